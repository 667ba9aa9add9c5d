"""Knowledge: index a project and answer scry with hybrid lexical + semantic search."""
