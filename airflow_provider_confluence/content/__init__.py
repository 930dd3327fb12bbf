"""What goes into a page: Markdown and tables to storage format (:mod:`.storage_format`), publishing without
silent overwrites (:mod:`.publish`), and the JSON-able summaries operators return (:mod:`.summaries`)."""
