"""The console's pages: live view per robot and episode review."""
