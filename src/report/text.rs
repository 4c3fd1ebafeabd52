//! Strings from the target made safe for where they land: one escaper per destination (an
//! SVG, a terminal, Markdown, folded stacks). Names of functions, files, threads and commands
//! are read from another process's memory or from a recording, so they are hostile: they may
//! hold escape sequences, control characters, bidirectional overrides that make a name read
//! as another, characters XML forbids, markup and the separators of each format.
//!
//! Nothing is dropped silently: a character that may not land as itself is shown as a
//! visible escape in Rust's style (`\x1b`, `\n`, `\u{202e}`, `\u{fffe}`), so the user sees
//! that something was there and what. A backslash of the name itself is left as it is: the
//! escapes are for reading, not for decoding back.
//!
//! Pure functions on strings; knows nothing of reports, the target or the sampler. JSON
//! (serde) needs none of this, and the data formats (speedscope, Perfetto, pprof) keep the raw
//! (capped, [`crate::model::MAX_NAME_CHARS`]) strings.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Bidirectional formatting characters: embeddings and overrides (U+202A–U+202E), isolates
/// (U+2066–U+2069), the marks (U+200E, U+200F, U+061C). Any of them can make a name display
/// as something else ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's non-characters: U+FDD0–U+FDEF and the last two code points of every plane
/// (U+FFFE, U+FFFF, U+1FFFE, …). XML forbids U+FFFE and U+FFFF and discourages the rest.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// What no destination gets as itself: C0 and C1 control characters and DEL (escape
/// sequences, newlines, tabs, NUL), the line and paragraph separators (U+2028, U+2029: a
/// newline to some viewers), bidirectional controls and non-characters.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || is_bidi_control(c)
        || is_noncharacter(c)
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Appends `c`'s visible escape: `\t`, `\n`, `\r`, `\x1b` for the other ASCII ones,
/// `\u{202e}` beyond.
fn push_escape(c: char, out: &mut String) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Appends `c` as itself, or its escape when it is [`hidden`].
fn push_visible(c: char, out: &mut String) {
    if hidden(c) {
        push_escape(c, out);
    } else {
        out.push(c);
    }
}

/// `s` with every character written by `push`, stopping once the written text would pass
/// `max` characters: then the pieces that fit in `max - 1` stay and `…` ends it. A piece (an
/// escape, an entity) is never split.
fn escaped(s: &str, max: usize, push: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(s.len().min(4 * max));
    // Byte length of `out` after each piece, while it stays within `max - 1` characters.
    let mut fits = 0;
    let mut chars = 0;
    for c in s.chars() {
        let before = out.len();
        push(c, &mut out);
        chars += out[before..].chars().count();
        if chars < max {
            fits = out.len();
        } else if chars > max {
            out.truncate(fits);
            out.push('…');
            return out;
        }
    }
    out
}

/// `s` with the characters no destination may get as themselves shown as escapes: what a
/// terminal may print.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_visible(c, &mut out);
    }
    Cow::Owned(out)
}

/// [`visible`] and at most `max` characters, the last of them `…` when cut.
pub fn visible_cut(s: &str, max: usize) -> String {
    escaped(s, max, push_visible)
}

/// Text for a terminal (the summary, the verdict and its "next:" lines, `dump`, the progress
/// line): one line, no escape sequence, no control or bidi character; at most `max`
/// characters.
pub fn terminal(s: &str, max: usize) -> String {
    visible_cut(s, max)
}

/// Text for an SVG text node or attribute value written by gilscope: `&<>"'` as entities and
/// every [`hidden`] character as its escape, so that the document stays well-formed XML 1.0
/// (which forbids most C0 controls, U+FFFE and U+FFFF) and no name can close an element.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => push_visible(c, &mut out),
        }
    }
    out
}

/// Text handed to inferno, which escapes `&<>"'` itself (quick-xml's `BytesText::new`) but
/// writes every other character as it comes: only the [`hidden`] ones are escaped here.
pub fn xml_for_inferno(s: &str) -> Cow<'_, str> {
    visible(s)
}

/// Appends `c` for Markdown text: entities for HTML, a backslash before Markdown's own
/// punctuation (and before `|`, which would end a table cell), escapes for the rest.
fn push_markdown(c: char, out: &mut String) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
            out.push('\\');
            out.push(c);
        }
        c if hidden(c) => {
            // The escape's own backslash, escaped: `\{` would render as `{` alone.
            let mut e = String::new();
            push_escape(c, &mut e);
            out.push('\\');
            out.push_str(&e);
        }
        c => out.push(c),
    }
}

/// Text inside a Markdown table cell or line: renders as itself, never as HTML, emphasis, a
/// link or a new cell or line; at most `max` characters of Markdown.
pub fn markdown(s: &str, max: usize) -> String {
    escaped(s, max, push_markdown)
}

/// `s` shown as code in Markdown, at most `max` characters of it: a code span (`` `compute` ``)
/// when `s` is plain, else a `<code>` element around [`markdown`] text. Nothing can be escaped
/// inside a code span, so a name's `<`, `&` and backticks would reach the file raw (inert to a
/// CommonMark renderer, not to every tool that reads a job summary; `<module>` is common), and
/// a backtick could end the span.
pub fn markdown_code(s: &str, max: usize) -> String {
    let plain = |c: char| !hidden(c) && !matches!(c, '`' | '<' | '>' | '&' | '|' | '\\');
    if !s.is_empty() && s.chars().all(plain) {
        format!("`{}`", visible_cut(s, max))
    } else {
        format!("<code>{}</code>", markdown(s, max))
    }
}

/// Appends `c` for a folded stack: `;` (between frames) escaped like the [`hidden`] ones.
fn push_folded(c: char, out: &mut String) {
    if c == ';' {
        out.push_str("\\x3b");
    } else {
        push_visible(c, out);
    }
}

/// A frame or thread name for a folded (collapsed) stack, `frame;frame;frame count`: no `;`
/// to split a frame, no newline to split a line, no control or bidi character; at most `max`
/// characters. Spaces may stay: the count is after the last one.
pub fn folded(s: &str, max: usize) -> String {
    escaped(s, max, push_folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a hostile name can hold, each kind once.
    const HOSTILE: &str = "a\u{1b}[31mb\u{7}\u{0}\u{7f}\u{85}\u{9b}c\u{202e}d\u{2066}\u{200f}\
                           \u{61c}e\u{fffe}\u{ffff}\u{1fffe}\u{fdd0}f\u{2028}\t\n\r";

    fn no_hidden(s: &str) -> bool {
        !s.chars().any(hidden)
    }

    #[test]
    fn hidden_characters_are_the_controls_bidi_and_non_characters() {
        for c in ['\u{1b}', '\u{0}', '\t', '\n', '\u{7f}', '\u{85}', '\u{9f}'] {
            assert!(hidden(c), "{c:?}");
        }
        for c in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{61c}',
        ] {
            assert!(hidden(c), "{c:?}");
        }
        for c in ['\u{fffe}', '\u{ffff}', '\u{10ffff}', '\u{fdd0}', '\u{fdef}'] {
            assert!(hidden(c), "{c:?}");
        }
        for c in [
            'a', ' ', 'é', '中', '\u{fffd}', '\u{fdcf}', '\u{fff0}', '😀', '\u{200d}',
        ] {
            assert!(!hidden(c), "{c:?}");
        }
    }

    #[test]
    fn the_terminal_gets_visible_escapes_and_no_control_or_bidi_character() {
        let t = terminal(HOSTILE, 1000);
        assert!(no_hidden(&t), "{t:?}");
        assert_eq!(
            t,
            "a\\x1b[31mb\\x07\\x00\\x7f\\u{85}\\u{9b}c\\u{202e}d\\u{2066}\\u{200f}\\u{61c}e\
             \\u{fffe}\\u{ffff}\\u{1fffe}\\u{fdd0}f\\u{2028}\\t\\n\\r"
        );
        // Plain text is untouched and not copied.
        assert!(matches!(visible("compute (app.py:3)"), Cow::Borrowed(_)));
        assert_eq!(terminal("</svg>|;`x`", 100), "</svg>|;`x`");
    }

    #[test]
    fn cutting_keeps_max_characters_ends_in_an_ellipsis_and_never_splits_an_escape() {
        assert_eq!(terminal("abcdef", 6), "abcdef");
        assert_eq!(terminal("abcdefg", 6), "abcde…");
        let long = terminal(&"é".repeat(5000), 1024);
        assert_eq!(long.chars().count(), 1024);
        assert!(long.ends_with("é…"));
        // `\x1b` is 4 characters: it stays whole or goes.
        assert_eq!(terminal("ab\u{1b}cdef", 6), "ab…");
        assert_eq!(terminal("ab\u{1b}", 6), "ab\\x1b");
        for max in 1..40 {
            let t = terminal(HOSTILE, max);
            assert!(t.chars().count() <= max, "{max}: {t:?}");
            assert!(no_hidden(&t));
        }
    }

    /// Parses `<t a="…">…</t>` with the text in both places.
    fn parses_as_xml(text: &str) -> String {
        let doc = format!(r#"<t a="{text}">{text}</t>"#);
        let parsed = roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        let root = parsed.root_element();
        assert_eq!(root.children().count(), 1, "{doc}");
        assert_eq!(root.attribute("a"), root.text());
        root.text().unwrap_or_default().to_string()
    }

    #[test]
    fn xml_is_well_formed_and_reads_back_as_the_visible_name() {
        let name = format!("</t><script>alert('x')</script>&amp;\"{HOSTILE}");
        let read = parses_as_xml(&xml(&name));
        assert!(
            read.starts_with("</t><script>alert('x')</script>&amp;\""),
            "{read}"
        );
        assert!(read.contains("\\u{fffe}\\u{ffff}") && read.contains("\\x1b[31m"));
        assert!(no_hidden(&read), "{read:?}");
        for c in (0..0x110000).filter_map(char::from_u32) {
            parses_as_xml(&xml(&c.to_string()));
        }
    }

    #[test]
    fn inferno_gets_no_character_xml_forbids_and_keeps_the_markup_it_escapes() {
        let s = xml_for_inferno(&format!("<a>&{HOSTILE}")).into_owned();
        assert!(s.starts_with("<a>&a\\x1b"), "{s}");
        assert!(no_hidden(&s));
    }

    #[test]
    fn markdown_text_is_inert_in_a_cell_and_shows_what_was_there() {
        let m = markdown(
            "</td><script>alert(1)</script>|*x*\n`y` \u{202e}_[l](u)#~!\\",
            500,
        );
        assert_eq!(
            m,
            "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;\\|\\*x\\*\\\\n\\`y\\` \
             \\\\u{202e}\\_\\[l\\](u)\\#\\~\\!\\\\"
        );
        assert!(no_hidden(&markdown(HOSTILE, 500)));
        let long = markdown(&"a".repeat(10_000), 120);
        assert_eq!(long.chars().count(), 120);
        // An entity is one piece: never cut into `&l…`.
        assert_eq!(markdown("ab<", 4), "ab…");
    }

    #[test]
    fn markdown_code_is_a_span_when_plain_else_an_element_around_inert_text() {
        assert_eq!(markdown_code("compute", 100), "`compute`");
        assert_eq!(markdown_code("__init__", 100), "`__init__`");
        assert_eq!(
            markdown_code("<module>", 100),
            "<code>&lt;module&gt;</code>"
        );
        assert_eq!(
            markdown_code("a`b|c</code><script>\n", 100),
            "<code>a\\`b\\|c&lt;/code&gt;&lt;script&gt;\\\\n</code>"
        );
        let long = markdown_code(&"x".repeat(500), 100);
        assert_eq!(long.chars().count(), 100 + 2);
        assert_eq!(
            markdown_code(&"<".repeat(500), 100).chars().count(),
            96 + 1 + 13
        );
    }

    #[test]
    fn folded_names_cannot_split_a_frame_or_a_line() {
        let f = folded("a;b\nc d\u{202e}", 100);
        assert_eq!(f, "a\\x3bb\\nc d\\u{202e}");
        assert!(!f.contains(';') && !f.contains('\n'));
        assert!(no_hidden(&folded(HOSTILE, 100)));
        let long = folded(&"x".repeat(10_000), 1024);
        assert_eq!(long.chars().count(), 1024);
        assert!(long.ends_with('…'));
    }
}
