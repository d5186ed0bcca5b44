//! Cutting a one-document `kind: List` in `kubectl get -o yaml` layout into the texts of its
//! items, so each item is parsed on its own: parsing the whole list at once holds every event
//! and every node of the whole allowlist at the same time (tens of times the file's size for
//! 200 000 entries), one item at a time holds one item.
//!
//! Only the layout kubectl writes is cut: a line `items:` at column 0 followed by items that each
//! start with `- ` at column 0, the block ending at the next line at column 0 that is not an item,
//! a comment or blank. An item's text is its lines with that leading `- ` turned into two spaces,
//! so lines and columns stay those of the file. Anything else (flow style, indented items,
//! aliases, several documents) is not cut and is parsed whole. Must not interpret the items.

/// The parts of a cut list.
pub(super) struct SplitList {
    /// The document with its items block replaced by `items: []`.
    pub rest: String,
    /// Each item's text and the 1-based file line it starts on.
    pub items: Vec<(usize, String)>,
}

/// Cuts `text` (one YAML document without aliases) if it has kubectl's List layout.
pub(super) fn split(text: &str) -> Option<SplitList> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines.iter().position(|line| line.trim_end() == "items:")?;
    let mut items: Vec<(usize, String)> = Vec::new();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(body) = bare
            .strip_prefix("- ")
            .or_else(|| (bare == "-").then_some(""))
        {
            let mut item = String::with_capacity(line.len());
            item.push_str("  ");
            item.push_str(body);
            item.push_str(&line[bare.len()..]);
            items.push((i + 1, item));
        } else if line.starts_with([' ', '\t']) || bare.is_empty() || bare.starts_with('#') {
            match items.last_mut() {
                Some((_, item)) => item.push_str(line),
                None if bare.trim().is_empty() || bare.trim_start().starts_with('#') => {}
                // Indented items: not kubectl's layout.
                None => return None,
            }
        } else {
            end = i;
            break;
        }
    }
    if items.is_empty() {
        return None;
    }
    let mut rest = String::new();
    lines[..start].iter().for_each(|line| rest.push_str(line));
    rest.push_str("items: []\n");
    lines[end..].iter().for_each(|line| rest.push_str(line));
    Some(SplitList { rest, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_layout_is_cut_into_items_at_their_file_lines() {
        let text = "apiVersion: v1\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  spec:\n    hosts:\n    - a.example\n\n# between\n- kind: ServiceEntry\nkind: List\nmetadata: {}\n";
        let list = split(text).expect("kubectl layout");
        assert_eq!(
            list.rest,
            "apiVersion: v1\nitems: []\nkind: List\nmetadata: {}\n"
        );
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.items[0].0, 3);
        assert_eq!(
            list.items[0].1,
            "  apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  spec:\n    hosts:\n    - a.example\n\n# between\n"
        );
        assert_eq!(list.items[1], (10, "  kind: ServiceEntry\n".to_owned()));
    }

    #[test]
    fn other_layouts_are_not_cut() {
        assert!(split("kind: List\nitems: [{kind: ServiceEntry}]\n").is_none());
        assert!(split("kind: List\nitems:\n  - kind: ServiceEntry\n").is_none());
        assert!(split("kind: List\nitems:\nkind2: x\n").is_none());
    }
}
