"""Reading tasks and sampling prompts: record formats, task sources, templates, sampling."""
