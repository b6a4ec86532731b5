//! Display-safe strings: nothing a container or a file controls reaches a terminal raw.

/// Quote a value for an error message, like Python's `repr` of a str: single quotes, with
/// quotes, backslashes and every character outside printable ASCII escaped. The result is
/// capped so one message stays one short line.
pub fn quoted(value: &str) -> String {
    const CAP: usize = 200;
    let mut out = String::with_capacity(value.len().min(CAP) + 2);
    out.push('\'');
    for (n, c) in value.chars().enumerate() {
        if n >= CAP {
            out.push_str("...");
            break;
        }
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.push('\'');
    out
}

/// Wire sanitisation (observe.md §8): every character outside printable ASCII becomes one
/// space, position-preserving; strings longer than `cap` become `cap - 3` characters + `...`.
pub fn sanitize_wire(value: &str, cap: usize) -> String {
    let clean: Vec<char> = value.chars().map(|c| if (' '..='~').contains(&c) { c } else { ' ' }).collect();
    if clean.len() <= cap {
        return clean.into_iter().collect();
    }
    if cap <= 3 {
        return "...".chars().take(cap).collect();
    }
    let mut out: String = clean[..cap - 3].iter().collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_control_characters() {
        assert_eq!(quoted("abc"), "'abc'");
        assert_eq!(quoted("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quoted("\x1b[31mred\n"), "'\\x1b[31mred\\n'");
        assert_eq!(quoted("é"), "'\\xe9'");
        assert!(quoted(&"x".repeat(1000)).len() < 210);
    }

    #[test]
    fn wire_sanitising() {
        assert_eq!(sanitize_wire("a\x07b", 256), "a b");
        assert_eq!(sanitize_wire("", 256), "");
        assert_eq!(sanitize_wire(&"x".repeat(300), 256).len(), 256);
        assert!(sanitize_wire(&"x".repeat(300), 256).ends_with("..."));
        assert_eq!(sanitize_wire("abcdef", 2), "..");
    }
}
