//! Just enough Markdown reading for the docs test: table rows, headings and fenced blocks.

/// The cells of every table row (separator rows skipped), trimmed.
pub fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|line| line.starts_with('|') && line.ends_with('|') && line.len() > 1)
        .map(|line| {
            line[1..line.len() - 1]
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
        })
        .collect()
}

/// The content of a cell that is one code span and nothing else, e.g. `` `limits.namespaces` ``.
pub fn code_cell(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.is_empty() && !inner.contains('`')).then_some(inner)
}

/// Table rows whose first cell is a single code span: (that code, the whole row).
pub fn keyed_rows(text: &str) -> Vec<(String, Vec<String>)> {
    table_rows(text)
        .into_iter()
        .filter_map(|row| {
            let key = code_cell(row.first()?)?.to_owned();
            Some((key, row))
        })
        .collect()
}

/// Headings (any level) that are a single code span, e.g. ``## `not_allowlisted` ``.
pub fn code_headings(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let title = line.trim_start_matches('#');
            (title.len() < line.len() && title.starts_with(' '))
                .then(|| code_cell(title.trim()).map(str::to_owned))
                .flatten()
        })
        .collect()
}

/// Fenced code blocks with their info string: (info, body).
pub fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}
