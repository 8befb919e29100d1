"""omni-bridge: prompts (see DESIGN.md, Layout)."""
