//! HCL v1 → HCL 2 text. SPIRE reads its files with HCL v1, which accepts two things the HCL 2
//! parser refuses: commas between the attributes of a block, and blocks written on one line
//! (`a { b { c = 1 } }`). Outside strings, comments and heredocs, every `{` gets a newline
//! after it, every `}` a newline before it, and a comma directly inside braces becomes a
//! newline. Both are no-ops for HCL 2 (object items may be newline-separated), so valid HCL 2
//! passes through unchanged in meaning.

/// Rewrites HCL v1 text so that an HCL 2 parser reads it as HCL v1 would.
pub(crate) fn to_hcl2(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    let mut brackets: Vec<char> = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                copy_string(&mut chars, &mut out);
            }
            '#' => {
                out.push(c);
                copy_line(&mut chars, &mut out);
            }
            '/' if chars.peek() == Some(&'/') => {
                out.push(c);
                copy_line(&mut chars, &mut out);
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                copy_block_comment(&mut chars, &mut out);
            }
            '<' if chars.peek() == Some(&'<') => {
                out.push(c);
                copy_heredoc(&mut chars, &mut out);
            }
            '{' => {
                brackets.push('{');
                out.push_str("{\n");
            }
            '}' => {
                brackets.pop();
                out.push_str("\n}");
            }
            '[' | '(' => {
                brackets.push(c);
                out.push(c);
            }
            ']' | ')' => {
                brackets.pop();
                out.push(c);
            }
            ',' if brackets.last() == Some(&'{') => out.push('\n'),
            _ => out.push(c),
        }
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
}
