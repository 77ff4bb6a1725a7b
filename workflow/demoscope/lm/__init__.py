"""Running the language model: loading, tokenising, the prompt builder, the prefix-cache runner, scoring and generation."""
