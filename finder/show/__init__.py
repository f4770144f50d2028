"""Show: what a person sees, the terminal (cli, text) and, later, the web page."""
