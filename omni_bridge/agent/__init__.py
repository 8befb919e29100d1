"""omni-bridge: agent (see DESIGN.md, Layout)."""
