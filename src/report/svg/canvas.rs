//! The drawing surface of the SVG report: the body built as a string from top to bottom, and
//! the text helpers every section uses — escaping hostile strings, estimating how wide text
//! draws, truncating and wrapping it. No section writes a target string any other way.

use std::fmt::Write as _;
use std::io::Write;

use crate::model::ThreadState;
use crate::report::{text, Paint};

/// The page is this wide whatever the run; its height follows the content.
pub const WIDTH: f64 = 1200.0;
pub const MARGIN: f64 = 24.0;
/// Width between the margins.
pub const CONTENT: f64 = WIDTH - 2.0 * MARGIN;
/// A string from the target is cut to this many characters before anything else…
const MAX_CHARS: usize = 200;
/// …and a paragraph (which may quote such strings) to this many.
const MAX_PARAGRAPH: usize = 2000;

pub const DIM: &str = "#666666";

/// The fill attribute of dimmed text.
pub fn dim() -> String {
    format!(r#" fill="{DIM}""#)
}

/// How a piece of text is set: what its width is estimated from.
#[derive(Clone, Copy, Debug)]
pub struct Font {
    pub size: f64,
    pub mono: bool,
    pub bold: bool,
}

impl Font {
    pub const fn sans(size: f64) -> Font {
        Font {
            size,
            mono: false,
            bold: false,
        }
    }

    pub const fn mono(size: f64) -> Font {
        Font {
            size,
            mono: true,
            bold: false,
        }
    }

    pub const fn bold(self) -> Font {
        Font { bold: true, ..self }
    }

    /// The attributes that set it.
    fn attrs(self) -> String {
        let mut s = format!(r#" font-size="{}""#, self.size);
        if self.mono {
            s.push_str(r#" font-family="monospace""#);
        }
        if self.bold {
            s.push_str(r#" font-weight="bold""#);
        }
        s
    }

    /// Estimated width of one character, in px. The font is the viewer's: the estimate
    /// follows DejaVu Sans, the widest common sans-serif (measured in Chromium), so that text
    /// fits there and merely leaves some room in narrower ones (Arial, Liberation: about 88%).
    fn advance(self, c: char) -> f64 {
        let wide = is_wide(c);
        let em = if self.mono {
            if wide {
                1.2
            } else {
                0.61
            }
        } else if wide {
            1.0
        } else {
            match c {
                ' ' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'i' | 'j' | 'l' | 'I' => 0.31,
                'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.41,
                'm' | 'w' | 'M' | 'W' | '@' | '%' => 0.92,
                'A'..='Z' => 0.70,
                _ => 0.60,
            }
        };
        let bold = if self.bold && !self.mono { 1.12 } else { 1.0 };
        em * self.size * bold
    }

    /// Estimated width of `s`, in px.
    pub fn width(self, s: &str) -> f64 {
        s.chars().map(|c| self.advance(c)).sum()
    }
}

/// East Asian wide and emoji characters, which take about twice a Latin letter.
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
}

/// A target string made fit to show: every character that may not be drawn as itself
/// visibly escaped ([`text::visible`]), at most [`MAX_CHARS`] characters.
pub fn clean(s: &str) -> String {
    text::visible_cut(s, MAX_CHARS)
}

/// `s` cleaned and cut with an ellipsis to draw within `px` in `font`; empty when not even
/// one character and the ellipsis fit.
pub fn fit(s: &str, px: f64, font: Font) -> String {
    let s = clean(s);
    if font.width(&s) <= px {
        return s;
    }
    let room = px - font.advance('…');
    let mut used = 0.0;
    let mut out = String::new();
    for c in s.chars() {
        used += font.advance(c);
        if used > room {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        return out;
    }
    out.push('…');
    out
}

/// `s` cleaned and broken into lines that draw within `px`, at spaces; a word longer than a
/// line is cut.
pub fn wrap(s: &str, px: f64, font: Font) -> Vec<String> {
    let s = text::visible_cut(s, MAX_PARAGRAPH);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if font.width(&candidate) <= px || line.is_empty() && font.width(word) <= px {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        line = if font.width(word) <= px {
            word.to_string()
        } else {
            fit(word, px, font)
        };
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `#rrggbb`.
pub fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

pub(crate) use crate::report::state_rgb;

pub fn state_fill(state: ThreadState) -> String {
    hex(state_rgb(state))
}

/// The hatch of timeline slices with no sample: grey stripes on white.
const SKIPPED_PATTERN: &str = concat!(
    r#"<defs><pattern id="skipped" width="4" height="4" patternUnits="userSpaceOnUse" "#,
    r##"patternTransform="rotate(45)"><rect width="4" height="4" fill="#ffffff"/>"##,
    r##"<rect width="1.6" height="4" fill="#969696"/></pattern></defs>"##
);

/// How a paint is filled in the report: its colours, or the hatch of slices with no sample.
pub fn paint_fills(paint: Paint) -> Vec<String> {
    match paint {
        Paint::Skipped => vec!["url(#skipped)".into()],
        _ => paint.fills().into_iter().map(hex).collect(),
    }
}

/// Text drawn on a state's colour: white on the dark ones, near-black on the light ones
/// (handoff orange, ready yellow, sleep and idle grey), by the colour's relative luminance.
pub fn ink_on(state: ThreadState) -> &'static str {
    let (r, g, b) = state_rgb(state);
    let luminance = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    if luminance > 150.0 {
        "#222222"
    } else {
        "#ffffff"
    }
}

/// `3 ticks`, `1 tick`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A rate to two or three significant figures: `0.39`, `4.2`, `610`.
pub fn rate(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.2}")
    } else if x < 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A run length: `3.4 s`, `12 min 05 s`, `1 h 02 min`.
pub fn duration(s: f64) -> String {
    let whole = s.round() as u64;
    if s < 120.0 {
        format!("{s:.1} s")
    } else if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

/// The SVG body, drawn from the top down: `y` is where the next thing goes.
pub struct Canvas {
    body: String,
    pub y: f64,
}

impl Canvas {
    pub fn new() -> Canvas {
        Canvas {
            body: String::new(),
            y: MARGIN,
        }
    }

    /// Markup the caller built from trusted pieces (numbers, constants, [`text::xml`]-escaped text).
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
    }

    /// Text with its baseline at (`x`, `y`), escaped; `extra` holds further attributes.
    pub fn text(&mut self, x: f64, y: f64, font: Font, extra: &str, s: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}"{}{extra}>{}</text>"#,
            font.attrs(),
            text::xml(s)
        );
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
            w.max(0.0),
            h.max(0.0)
        );
    }

    /// One line of text below the last, and moves down past it.
    pub fn line(&mut self, x: f64, font: Font, extra: &str, s: &str) {
        let base = self.y + font.size;
        self.text(x, base, font, extra, s);
        self.y += font.size * 1.45;
    }

    /// A paragraph wrapped to `px` from `x`.
    pub fn para(&mut self, x: f64, px: f64, font: Font, extra: &str, s: &str) {
        for l in wrap(s, px, font) {
            self.line(x, font, extra, &l);
        }
    }

    /// A section title with a rule under it, and what the section shows.
    pub fn heading(&mut self, title: &str, about: &str) {
        self.y += 22.0;
        self.line(MARGIN, Font::sans(17.0).bold(), "", title);
        self.rect(MARGIN, self.y - 3.0, CONTENT, 1.0, "#cccccc");
        self.y += 4.0;
        if !about.is_empty() {
            self.para(
                MARGIN,
                CONTENT,
                Font::sans(12.0),
                &format!(r#" fill="{DIM}""#),
                about,
            );
        }
        self.y += 4.0;
    }

    /// A row of colour swatches naming what a picture drew, wrapped onto a second row when
    /// they do not fit; each says what it stands for when hovered. Code frames' swatch shows
    /// their shades side by side.
    pub fn legend(&mut self, paints: &[Paint]) {
        let font = Font::sans(12.0);
        let mut x = MARGIN;
        self.body.push_str("<g class=\"legend\">\n");
        for &paint in paints {
            let label = paint.label();
            let w = 17.0 + font.width(label) + 18.0;
            if x > MARGIN && x + w - 18.0 > MARGIN + CONTENT {
                x = MARGIN;
                self.y += 20.0;
            }
            let _ = write!(
                self.body,
                "<g class=\"key\"><title>{}</title>",
                text::xml(&paint.meaning())
            );
            let fills = paint_fills(paint);
            let stripe = 12.0 / fills.len() as f64;
            for (k, fill) in fills.iter().enumerate() {
                self.rect(x + stripe * k as f64, self.y + 2.0, stripe, 12.0, fill);
            }
            self.text(x + 17.0, self.y + 12.5, font, "", label);
            self.body.push_str("</g>\n");
            x += w;
        }
        self.body.push_str("</g>\n");
        self.y += 22.0;
    }

    /// Opens a picture: its legend and what it draws (`<g class="data">`) go inside, so that
    /// what is drawn can be checked against the legend. Closed by [`Canvas::end_picture`].
    pub fn begin_picture(&mut self, id: &str) {
        let _ = writeln!(self.body, "<g class=\"picture\" id=\"{id}\">");
    }

    pub fn end_picture(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// Writes the document: the header with the height now known, then the body.
    pub fn finish(self, title: &str, out: &mut dyn Write) -> std::io::Result<()> {
        let height = (self.y + MARGIN).ceil();
        write!(
            out,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#,
                "\n",
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" "#,
                r##"viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12" fill="#222222">"##,
                "\n<title>{title}</title>\n",
                r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>"##,
                "\n{defs}\n"
            ),
            w = WIDTH,
            h = height,
            title = text::xml(title),
            defs = SKIPPED_PATTERN
        )?;
        out.write_all(self.body.as_bytes())?;
        out.write_all(b"</svg>\n")
    }
}

/// What each state means, in a few words: the same words as every other format's legend.
#[cfg(test)]
pub use crate::report::state_label as legend_label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_control_characters() {
        assert_eq!(
            text::xml("</svg><script>a&'\"\u{1}\u{7f}\u{202e}x"),
            "&lt;/svg&gt;&lt;script&gt;a&amp;&#39;&quot;\\x01\\x7f\\u{202e}x"
        );
        assert_eq!(clean(&"x".repeat(10_000)).chars().count(), MAX_CHARS);
    }

    #[test]
    fn fitting_cuts_with_an_ellipsis() {
        let font = Font::mono(10.0);
        assert_eq!(fit("short", 100.0, font), "short");
        let cut = fit("a_rather_long_function_name", 60.0, font);
        assert!(cut.ends_with('…') && font.width(&cut) <= 60.0, "{cut}");
        assert_eq!(fit("abc", 3.0, font), "");
    }

    #[test]
    fn wrapping_keeps_every_line_within_the_width() {
        let font = Font::sans(14.0);
        let text = "The GIL is held 98% of the time and 2.9 threads wait for it on average; \
                    compute() at app.py:12 holds it 87% of the time.";
        let lines = wrap(text, 300.0, font);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| font.width(l) <= 300.0), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        let long = wrap(&"y".repeat(500), 100.0, font);
        assert!(long.iter().all(|l| font.width(l) <= 100.0));
        let words = "word ".repeat(2000);
        let lines = wrap(&words, 1000.0, font);
        let kept: usize = lines.iter().map(|l| l.chars().count() + 1).sum();
        assert!(
            (MAX_PARAGRAPH..MAX_PARAGRAPH + 10).contains(&kept),
            "{kept}"
        );
    }

    #[test]
    fn durations_read_in_the_right_unit() {
        assert_eq!(duration(3.42), "3.4 s");
        assert_eq!(duration(725.0), "12 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
    }
}
