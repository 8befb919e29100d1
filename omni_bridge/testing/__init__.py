"""omni-bridge: testing (see DESIGN.md, Layout)."""
