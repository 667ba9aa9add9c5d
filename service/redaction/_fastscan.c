/*
 * The secret scrubber's per-read line pass, compiled (service/redaction/lines.py).
 *
 * Why C: for every read the scrubber finds its line breaks, builds its text without line
 * breaks and picks the lines that may be dump lines. In numpy and bytes methods that is
 * five or six separate passes over the read, each holding the GIL, and together they cost
 * more than the SIMD search of the text itself. Here they are one pass, run without the
 * GIL (the dump view's thread works meanwhile).
 *
 * The pure path (lines.py: numpy `flatnonzero`, `bytes.replace`, dumps.candidate_lines)
 * is the reference: tests run both on the same reads and require equal results, so every
 * rule below mirrors one line there.
 *
 * Only offsets leave this file besides the text without line breaks; no buffer of the
 * read's bytes is kept after a call returns.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Character classes of the dump-line detector (dumps.py: _IS_HEX, _IS_OCTAL, ...). */
enum { HEX = 1, OCTAL = 2, BLANK = 4, END = 8 };
static uint8_t classes[256];

/* How far past a line's start the detector reads (dumps._REACH, dumps._MAX_INDENT). */
#define MAX_INDENT 64
#define LOOK 16

/* A growable array of offsets, allocated without the GIL (PyMem_Raw*). */
typedef struct {
    int64_t *items;
    Py_ssize_t len;
    Py_ssize_t cap;
} Offsets;

static inline int offsets_push(Offsets *list, int64_t value) {
    if (__builtin_expect(list->len == list->cap, 0)) {
        Py_ssize_t cap = list->cap ? list->cap * 2 : 4096;
        if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(int64_t)) {
            return -1;
        }
        int64_t *grown = PyMem_RawRealloc(list->items, (size_t)cap * sizeof(int64_t));
        if (grown == NULL) {
            return -1;
        }
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->len++] = value;
    return 0;
}

/* The line feeds among the breaks, where some break is a '\r' (otherwise the two lists are
 * the same, and one object stands for both). */
static int line_feeds(const uint8_t *data, const Offsets *breaks, Offsets *newlines) {
    for (Py_ssize_t k = 0; k < breaks->len; k++) {
        if (data[breaks->items[k]] == '\n' && offsets_push(newlines, breaks->items[k]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* data[i], or a line feed past the end: the detector reads whole columns, and the pure
 * path pads the read with line feeds for the lines near its end. */
static inline uint8_t at(const uint8_t *data, Py_ssize_t size, Py_ssize_t i) {
    return i < size ? data[i] : (uint8_t)'\n';
}

static inline int is(const uint8_t *data, Py_ssize_t size, Py_ssize_t i, int kind) {
    return (classes[at(data, size, i)] & kind) != 0;
}

/*
 * Copy data without '\r' and '\n' into out (at least size bytes), recording the offsets
 * of the breaks (both kinds) when the list is given, and in *returns whether some break
 * is a '\r'. Returns the length written, or -1 when the list cannot grow.
 */
static Py_ssize_t split_breaks(const uint8_t *data, Py_ssize_t size, uint8_t *out,
                               Offsets *breaks, int *returns) {
    Py_ssize_t i = 0, j = 0;
    int saw_return = 0;
#if defined(__SSE2__) && defined(__GNUC__)
    /* Lines are tens of bytes long: most 16-byte blocks hold no break and are copied
     * whole; in the others, each break is found from the comparison mask and the bytes
     * between breaks are copied in pieces. j <= i always, so a 16-byte store at out + j
     * stays inside out[0:size]. */
    const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    while (i + 16 <= size) {
        __m128i block = _mm_loadu_si128((const __m128i *)(data + i));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(block, lf), _mm_cmpeq_epi8(block, cr)));
        _mm_storeu_si128((__m128i *)(out + j), block);
        if (mask == 0) {
            i += 16;
            j += 16;
            continue;
        }
        /* The bytes before the first break are in place already. After a break, the rest
         * of the block moves left: one 16-byte copy, where the 16 bytes read from data and
         * written at out + j (j < i + kept: a break is gone) lie inside both buffers;
         * memcpy near the end of the read. */
        Py_ssize_t kept = 0;
        int whole_copies = i + 32 <= size;
        while (mask != 0) {
            Py_ssize_t k = __builtin_ctz(mask);
            mask &= mask - 1;
            if (k > kept) {
                if (whole_copies) {
                    _mm_storeu_si128((__m128i *)(out + j),
                                     _mm_loadu_si128((const __m128i *)(data + i + kept)));
                } else {
                    memcpy(out + j, data + i + kept, (size_t)(k - kept));
                }
                j += k - kept;
            }
            saw_return |= data[i + k] == '\r';
            if (breaks != NULL && offsets_push(breaks, i + k) < 0) {
                return -1;
            }
            kept = k + 1;
        }
        if (whole_copies) {
            _mm_storeu_si128((__m128i *)(out + j),
                             _mm_loadu_si128((const __m128i *)(data + i + kept)));
        } else {
            memcpy(out + j, data + i + kept, (size_t)(16 - kept));
        }
        j += 16 - kept;
        i += 16;
    }
#endif
    for (; i < size; i++) {
        uint8_t c = data[i];
        if (c == '\n' || c == '\r') {
            saw_return |= c == '\r';
            if (breaks != NULL && offsets_push(breaks, i) < 0) {
                return -1;
            }
        } else {
            out[j++] = c;
        }
    }
    *returns = saw_return;
    return j;
}

/* dumps.candidate_lines' `cell(j)`: an od -c cell of four bytes at column j. */
static int od_cell(const uint8_t *g, const uint8_t *cls, int j) {
    int sp0 = g[j] == ' ', sp1 = g[j + 1] == ' ', sp2 = g[j + 2] == ' ', sp3 = g[j + 3] == ' ';
    int three = sp0 && sp1;
    int printable = three && sp2 && !sp3 && !(cls[j + 3] & END);
    int escaped = three && g[j + 2] == '\\';
    int octal_cell = sp0 && (cls[j + 1] & OCTAL) && (cls[j + 2] & OCTAL) && (cls[j + 3] & OCTAL);
    int blank_cell = three && sp2 && sp3;
    return printable || escaped || octal_cell || blank_cell;
}

/*
 * Whether the line starting at data[s] may be a dump line: dumps.candidate_lines for one
 * line (a superset of what parse_dump_line accepts), test for test.
 */
static int may_be_dump_line(const uint8_t *data, Py_ssize_t size, Py_ssize_t s) {
    uint8_t first = at(data, size, s);
    if (classes[first] & BLANK) {
        /* Indented: count blanks (at most MAX_INDENT), then look at what follows them. */
        Py_ssize_t blanks = 1;
        while (blanks < MAX_INDENT && is(data, size, s + blanks, BLANK)) {
            blanks++;
        }
        uint8_t lead = at(data, size, s + blanks), after = at(data, size, s + blanks + 1);
        Py_ssize_t phase = blanks % 4;
        int od_like = (phase == 3 && !(classes[lead] & END)) || (phase == 2 && lead == '\\') ||
                      (phase == 1 && (classes[lead] & OCTAL));
        int hex_like = (classes[lead] & HEX) && ((classes[after] & HEX) || (after | 32) == 'x');
        return od_like || hex_like;
    }
    if (!(classes[first] & HEX)) {
        return 0;
    }
    uint8_t second = at(data, size, s + 1), third = at(data, size, s + 2);
    if (!((classes[second] & HEX) || (second | 32) == 'x')) {
        return 0;
    }
    if (!((classes[third] & HEX) || third == ' ' || third == ':')) {
        return 0;
    }
    if (!is(data, size, s + 3, HEX)) {
        return 0;
    }
    /* The first LOOK bytes, line feeds past the end, and their classes. */
    uint8_t g[LOOK], cls[LOOK];
    for (int k = 0; k < LOOK; k++) {
        g[k] = at(data, size, s + k);
        cls[k] = classes[g[k]];
    }
#define HEXAT(k) ((cls[k] & HEX) != 0)
#define OCTAT(k) ((cls[k] & OCTAL) != 0)
    int offset7 = 1, octal7 = 1;
    for (int k = 0; k < 7; k++) {
        offset7 = offset7 && HEXAT(k);
        octal7 = octal7 && OCTAT(k);
    }
    /* An offset then hex (xxd, od, hexdump -C), or od -c's octal offset and cells. */
    int with_offset = offset7 && ((g[7] == ' ' && HEXAT(8) && HEXAT(9)) ||
                                  (HEXAT(7) && (g[8] == ':' || g[8] == ' ')));
    int od_chars = octal7 && od_cell(g, cls, 7) && (od_cell(g, cls, 11) || (cls[11] & END));
    /* Hex pairs with a separator: "hh hh", "hh:hh:hh:hh", "hhhh hh"; a C array "0xhh". */
    int bare = HEXAT(0) && HEXAT(1) &&
               ((g[2] == ' ' && HEXAT(3) && HEXAT(4)) ||
                (g[2] == ':' && HEXAT(3) && HEXAT(4) && g[5] == ':' && g[8] == ':') ||
                (HEXAT(2) && HEXAT(3) && g[4] == ' ' && HEXAT(5) && HEXAT(6)));
    int c_array = g[0] == '0' && (g[1] | 32) == 'x' && HEXAT(2);
#undef HEXAT
#undef OCTAT
    return with_offset || od_chars || bare || c_array;
}

/* The starts of every line (the last one too when it has no line feed) that may be a dump
 * line, in order. */
static int dump_candidates(const uint8_t *data, Py_ssize_t size, const Offsets *newlines,
                           Offsets *found) {
    if (size == 0) {
        return 0;
    }
    if (may_be_dump_line(data, size, 0) && offsets_push(found, 0) < 0) {
        return -1;
    }
    for (Py_ssize_t k = 0; k < newlines->len; k++) {
        Py_ssize_t start = (Py_ssize_t)newlines->items[k] + 1;
        if (start < size && may_be_dump_line(data, size, start) && offsets_push(found, start) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *offsets_bytes(const Offsets *list) {
    return PyBytes_FromStringAndSize((const char *)list->items,
                                     list->len * (Py_ssize_t)sizeof(int64_t));
}

static PyObject *scan_lines(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_lines() takes bytes");
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    PyObject *text = PyBytes_FromStringAndSize(NULL, size);
    if (text == NULL) {
        return NULL;
    }
    Offsets breaks = {0}, newlines = {0}, found = {0};
    Py_ssize_t length;
    int returns = 0, same, failed;
    /* `arg` is immutable and referenced by the caller; `text` is ours alone. */
    Py_BEGIN_ALLOW_THREADS
    length = split_breaks(data, size, (uint8_t *)PyBytes_AS_STRING(text), &breaks, &returns);
    /* Most output has no '\r': its breaks are its line feeds, one list for both. */
    same = !returns;
    failed = length < 0 || (!same && line_feeds(data, &breaks, &newlines) < 0) ||
             dump_candidates(data, size, same ? &breaks : &newlines, &found) < 0;
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (failed) {
        PyErr_NoMemory();
    } else if (_PyBytes_Resize(&text, length) == 0) {
        PyObject *b = offsets_bytes(&breaks);
        PyObject *n = same ? Py_XNewRef(b) : offsets_bytes(&newlines);
        PyObject *c = offsets_bytes(&found);
        if (b != NULL && n != NULL && c != NULL) {
            result = PyTuple_Pack(4, b, n, text, c);
        }
        Py_XDECREF(b);
        Py_XDECREF(n);
        Py_XDECREF(c);
    }
    /* On failure _PyBytes_Resize has already released `text` and set it to NULL. */
    Py_XDECREF(text);
    PyMem_RawFree(breaks.items);
    PyMem_RawFree(newlines.items);
    PyMem_RawFree(found.items);
    return result;
}

static PyObject *remove_breaks(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "remove_breaks() takes bytes");
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (memchr(data, '\n', (size_t)size) == NULL && memchr(data, '\r', (size_t)size) == NULL) {
        /* Nothing to remove: the same object, as bytes.replace returns it. */
        return Py_NewRef(arg);
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, size);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t length;
    Py_BEGIN_ALLOW_THREADS
    int returns;
    length = split_breaks(data, size, (uint8_t *)PyBytes_AS_STRING(text), NULL, &returns);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&text, length) < 0) {
        return NULL;
    }
    return text;
}

static PyMethodDef methods[] = {
    {"scan_lines", scan_lines, METH_O,
     "scan_lines(data) -> (breaks, newlines, text, candidates): offsets of '\\r' and '\\n', "
     "of '\\n', data without line breaks, starts of lines that may be dump lines; offsets "
     "as native int64 bytes."},
    {"remove_breaks", remove_breaks, METH_O, "remove_breaks(data) -> data without '\\r' and '\\n'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastscan", "The secret scrubber's line pass, compiled.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastscan(void) {
    const char *hex = "0123456789abcdefABCDEF";
    for (const char *c = hex; *c; c++) {
        classes[(uint8_t)*c] |= HEX;
    }
    for (const char *c = "01234567"; *c; c++) {
        classes[(uint8_t)*c] |= OCTAL;
    }
    classes[' '] |= BLANK;
    classes['\t'] |= BLANK;
    classes['\r'] |= END;
    classes['\n'] |= END;
    return PyModule_Create(&module_def);
}
