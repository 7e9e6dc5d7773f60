"""Hub model card templates (Jinja, rendered by liteframe_hf.hub); shipped as package data."""
