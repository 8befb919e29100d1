"""omni-bridge: integrations (see DESIGN.md, Layout)."""
