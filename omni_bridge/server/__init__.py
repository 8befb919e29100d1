"""omni-bridge: server (see DESIGN.md, Layout)."""
