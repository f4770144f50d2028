"""Learn: few-shot class heads, their cut-offs, and the evaluation of both."""
