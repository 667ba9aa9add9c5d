"""Settings come from env, a TOML file and secret files; a bad one stops the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import SettingsError, load_settings
from tests.support.process import run_patina


def test_env_prefix_and_nested_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATINA_HOME", str(tmp_path))
    monkeypatch.setenv("PATINA_MAX_CONCURRENT_QUERIES", "7")
    monkeypatch.setenv("PATINA_KNOWLEDGE__CANDIDATES", "30")
    settings = load_settings()
    assert settings.max_concurrent_queries == 7
    assert settings.knowledge.candidates == 30
    assert settings.resolved_socket_path == tmp_path / "run" / "serve.sock"
    assert settings.resolved_admin_socket_path == tmp_path / "run" / "admin.sock"


def test_toml_file_then_env_then_explicit_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "patina.toml"
    config.write_text(
        'max_limit = 500\nquery_timeout_ms = 900\nsocket_mode = "0660"\n'
        "[knowledge]\ncandidates = 40\n"
    )
    monkeypatch.setenv("PATINA_QUERY_TIMEOUT_MS", "1200")
    settings = load_settings(config, home=tmp_path, max_limit=250)
    assert settings.max_limit == 250  # explicit wins
    assert settings.query_timeout_ms == 1200  # env beats the file
    assert settings.knowledge.candidates == 40
    assert settings.socket_mode == 0o660


def test_secret_files_fill_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PATINA_SERVE_TOKEN").write_text("pt_from-a-secret-file")
    monkeypatch.setenv("PATINA_SECRETS_DIR", str(secrets))
    settings = load_settings(home=tmp_path)
    assert settings.serve_token is not None
    assert settings.serve_token.get_secret_value() == "pt_from-a-secret-file"
    assert "pt_from-a-secret-file" not in repr(settings)


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="invalid setting max_concurrent_queries"):
        load_settings(home=tmp_path, max_concurrent_queries=0)
    with pytest.raises(SettingsError, match="invalid setting tcp"):
        load_settings(home=tmp_path, tcp="no-port-here")
    with pytest.raises(SettingsError, match="invalid setting no_such_setting"):
        load_settings(home=tmp_path, no_such_setting=1)


def test_serve_with_a_bad_setting_exits_non_zero_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('max_body_bytes = "lots"\n')
    result = run_patina("serve", "--config", str(config), env={"PATINA_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert b"invalid setting max_body_bytes" in result.stderr
    env_result = run_patina("serve", env={"PATINA_HOME": str(tmp_path), "PATINA_LOG_FORMAT": "xml"})
    assert env_result.returncode == 2
    assert b"invalid setting log_format" in env_result.stderr


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = run_patina("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert b"does not exist" in result.stderr


def test_removed_fusion_settings_are_accepted_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "patina.toml"
    config.write_text("[knowledge]\nrrf_k = 60\nlexical_weight = 0.2\nsemantic_weight = 1.0\n")
    with caplog.at_level("WARNING", logger="patina.knowledge"):
        settings = load_settings(config, home=tmp_path)
    assert settings.knowledge.candidates == 100
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1
    assert all(name in warnings[0] for name in ("rrf_k", "lexical_weight", "semantic_weight"))


@pytest.mark.parametrize(
    ("line", "graph"), [("quantize = true", "int8-dynamic"), ("quantize = false", "fp32")]
)
def test_the_old_quantize_switch_keeps_its_meaning_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, line: str, graph: str
) -> None:
    config = tmp_path / "patina.toml"
    config.write_text(f"[knowledge]\n{line}\n")
    with caplog.at_level("WARNING", logger="patina.knowledge"):
        settings = load_settings(config, home=tmp_path)
    assert settings.knowledge.query_graph == graph
    warnings = [r.getMessage() for r in caplog.records if "query_graph" in r.getMessage()]
    assert len(warnings) == 1


def test_the_old_quantize_switch_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATINA_KNOWLEDGE__QUANTIZE", "true")
    assert load_settings(None, home=tmp_path).knowledge.query_graph == "int8-dynamic"
    monkeypatch.setenv("PATINA_KNOWLEDGE__QUERY_GRAPH", "fp32")
    # Named both ways, the new setting wins.
    assert load_settings(None, home=tmp_path).knowledge.query_graph == "fp32"


def test_an_unknown_query_graph_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "patina.toml"
    config.write_text('[knowledge]\nquery_graph = "int4"\n')
    with pytest.raises(SettingsError, match=r"knowledge\.query_graph"):
        load_settings(config, home=tmp_path)
    config.write_text('[knowledge]\nquantize = "maybe"\n')
    with pytest.raises(SettingsError, match=r"quantize \(now query_graph\) must be true or false"):
        load_settings(config, home=tmp_path)


def test_a_misspelt_knowledge_setting_is_named(tmp_path: Path) -> None:
    config = tmp_path / "patina.toml"
    config.write_text("[knowledge]\ncandidatez = 40\n")
    with pytest.raises(SettingsError, match=r"invalid setting knowledge\.candidatez"):
        load_settings(config, home=tmp_path)
