//! HCL v1 → HCL 2 text. SPIRE reads its files with HCL v1, which accepts three things the
//! HCL 2 parser refuses: commas between the attributes of a block, blocks written on one line
//! (`a { b { c = 1 } }`), and several attributes on one line without any separator
//! (`plugin_data { database_type = "sqlite3" connection_string = "./x" }`). Outside strings,
//! comments and heredocs, every `{` gets a newline after it, every `}` a newline before it, a
//! comma directly inside braces becomes a newline, and a key that follows a complete
//! attribute (or block) on the same line gets a newline before it. All are no-ops for HCL 2
//! (object items may be newline-separated), so valid HCL 2 passes through unchanged in
//! meaning.

/// One open bracket (or the file itself) and the item being read inside it.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// `{`, `[`, `(`, or `\0` for the file.
    kind: char,
    /// What the current item has seen (meaningful in the file and in `{}` bodies).
    item: Item,
}

/// The attribute or block being read on the current line of a body.
#[derive(Clone, Copy, Debug, Default)]
struct Item {
    /// An `=` was seen: a value follows.
    assigned: bool,
    /// The value, or the block body, ended: a key now starts a new item.
    complete: bool,
    /// Inside a bare word (identifier, number) of the value.
    in_word: bool,
}

/// Rewrites HCL v1 text so that an HCL 2 parser reads it as HCL v1 would.
pub(crate) fn to_hcl2(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    let mut frames = vec![Frame {
        kind: '\0',
        item: Item::default(),
    }];
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        // The file's frame is never popped.
        let top = frames.len() - 1;
        let kind = frames[top].kind;
        let body = matches!(kind, '{' | '\0');
        let mut item = frames[top].item;
        if body && item.complete && !c.is_whitespace() {
            if c == '"' || c == '_' || c.is_alphabetic() {
                // A key after a complete item on the same line: HCL v1's implicit separator.
                out.push('\n');
                item = Item::default();
            } else if !(matches!(c, '}' | ',' | '#')
                || c == '/' && matches!(chars.peek(), Some(&('/' | '*'))))
            {
                // An operator: the value goes on.
                item.complete = false;
            }
        }
        match c {
            '"' => {
                out.push(c);
                copy_string(&mut chars, &mut out);
                item.complete = item.assigned;
                item.in_word = false;
            }
            '#' => {
                out.push(c);
                copy_line(&mut chars, &mut out);
                item = Item::default();
            }
            '/' if chars.peek() == Some(&'/') => {
                out.push(c);
                copy_line(&mut chars, &mut out);
                item = Item::default();
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                copy_block_comment(&mut chars, &mut out);
            }
            '<' if chars.peek() == Some(&'<') => {
                out.push(c);
                copy_heredoc(&mut chars, &mut out);
                item = Item::default();
            }
            '{' | '[' | '(' => {
                item.in_word = false;
                frames[top].item = item;
                frames.push(Frame {
                    kind: c,
                    item: Item::default(),
                });
                out.push(c);
                if c == '{' {
                    out.push('\n');
                }
                continue;
            }
            '}' | ']' | ')' => {
                if c == '}' {
                    out.push('\n');
                }
                out.push(c);
                if top > 0 {
                    frames.pop();
                    // A block body, an object or a list value ended.
                    let parent = &mut frames[top - 1].item;
                    parent.complete = c == '}' || parent.assigned;
                    parent.in_word = false;
                }
                continue;
            }
            ',' if kind == '{' => {
                out.push('\n');
                item = Item::default();
            }
            '\n' => {
                out.push(c);
                if body {
                    item = Item::default();
                }
            }
            '=' => {
                out.push(c);
                item.assigned = true;
                item.complete = false;
                item.in_word = false;
            }
            _ if c.is_whitespace() => {
                out.push(c);
                if item.in_word {
                    item.in_word = false;
                    item.complete = item.assigned;
                }
            }
            _ if c.is_alphanumeric() || matches!(c, '_' | '.') => {
                out.push(c);
                item.in_word = item.assigned;
            }
            _ => {
                // An operator or other punctuation: whatever follows belongs to the value.
                out.push(c);
                item.in_word = false;
                item.complete = false;
            }
        }
        frames[top].item = item;
    }
    out
}

fn copy_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return,
            _ => {}
        }
    }
}

fn copy_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    for c in chars.by_ref() {
        out.push(c);
        if c == '\n' {
            return;
        }
    }
}

fn copy_block_comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let mut previous = '\0';
    for c in chars.by_ref() {
        out.push(c);
        if previous == '*' && c == '/' {
            return;
        }
        previous = c;
    }
}

/// `<<EOF` / `<<-EOF` … `EOF`: copied verbatim up to and including the terminator line.
fn copy_heredoc(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let mut header = String::new();
    for c in chars.by_ref() {
        out.push(c);
        if c == '\n' {
            break;
        }
        header.push(c);
    }
    let marker = header
        .trim_start_matches('<')
        .trim_start_matches('-')
        .trim()
        .to_owned();
    if marker.is_empty() {
        return;
    }
    let mut line = String::new();
    for c in chars.by_ref() {
        out.push(c);
        if c == '\n' {
            if line.trim() == marker {
                return;
            }
            line.clear();
        } else {
            line.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        hcl::from_str(&to_hcl2(text)).unwrap_or_else(|e| panic!("{e}\n{}", to_hcl2(text)))
    }

    #[test]
    fn commas_between_block_attributes() {
        let v =
            parse("ca_subject {\n country = [\"US\", \"FR\"],\n organization = [\"SPIFFE\"],\n}\n");
        assert_eq!(v["ca_subject"]["country"], serde_json::json!(["US", "FR"]));
        assert_eq!(
            v["ca_subject"]["organization"],
            serde_json::json!(["SPIFFE"])
        );
    }

    #[test]
    fn one_line_nested_blocks() {
        let v = parse("a { b { c = 1 } }\nplugin_data = {}\nx = { k = \"v\", n = 2 }");
        assert_eq!(v["a"]["b"]["c"], 1);
        assert_eq!(v["plugin_data"], serde_json::json!({}));
        assert_eq!(v["x"], serde_json::json!({"k": "v", "n": 2}));
    }

    #[test]
    fn strings_comments_and_heredocs_are_untouched() {
        let text =
            "s = \"a, {b} \\\" c\" # x, { y\n// z, }\n/* q, { */\nh = <<EOF\n{ a, b }\nEOF\n";
        let v = parse(text);
        assert_eq!(v["s"], "a, {b} \" c");
        assert_eq!(v["h"], "{ a, b }\n");
    }

    #[test]
    fn several_attributes_on_one_line() {
        let v = parse(
            "plugins { DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" connection_string = \"./x\" } } }",
        );
        let data = &v["plugins"]["DataStore"]["sql"]["plugin_data"];
        assert_eq!(data["database_type"], "sqlite3");
        assert_eq!(data["connection_string"], "./x");

        let v = parse("a { n = 1 b = true l = [1, 2] o = { k = \"v\" } w = x_y }\nz = 2 y = \"s\"");
        assert_eq!(v["a"]["n"], 1);
        assert_eq!(v["a"]["b"], true);
        assert_eq!(v["a"]["l"], serde_json::json!([1, 2]));
        assert_eq!(v["a"]["o"], serde_json::json!({"k": "v"}));
        assert_eq!(v["z"], 2);
        assert_eq!(v["y"], "s");
    }

    #[test]
    fn quoted_strings_with_equals_and_braces_survive_on_one_line() {
        let v = parse(
            "plugin_data { a = \"x = } y\" b = \"{ c = d }\" e = \"\\\"=}\" } f { g = 1 } h { }",
        );
        assert_eq!(v["plugin_data"]["a"], "x = } y");
        assert_eq!(v["plugin_data"]["b"], "{ c = d }");
        assert_eq!(v["plugin_data"]["e"], "\"=}");
        assert_eq!(v["f"]["g"], 1);
        assert_eq!(v["h"], serde_json::json!({}));
    }

    #[test]
    fn blocks_and_comments_between_items_on_one_line() {
        let v = parse("a { x = 1 } b { y = 2 }\nc = 3 /* note */ d = 4 # e = 5\n");
        assert_eq!(v["a"]["x"], 1);
        assert_eq!(v["b"]["y"], 2);
        assert_eq!(v["c"], 3);
        assert_eq!(v["d"], 4);
        assert!(v.get("e").is_none());
    }

    #[test]
    fn valid_hcl2_keeps_its_meaning() {
        for text in [
            "a = 1 + 2\nb = x ? \"y\" : \"n\"\nc = -3\n",
            "d = f(1, 2)\ne = [for v in l : v]\ng = a / b // c = 1\n",
            "h = { k = \"v\" }\ni = l[0] j = 2\n",
        ] {
            let rewritten = to_hcl2(text);
            assert_eq!(
                hcl::parse(&rewritten).unwrap(),
                hcl::parse(&text.replace("] j", "]\nj")).unwrap(),
                "{rewritten}"
            );
        }
    }
}
