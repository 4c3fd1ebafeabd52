//! A command line shown within a width: whole when it fits, else shortened in the middle
//! with "…" so that the interpreter and the script name stay visible.

/// `words` joined by spaces, shortened until `fits` accepts it: first the arguments after
/// the script give way from the middle (`python3 app.py … --last`), then the words between
/// the interpreter and the script, then the script's folders (`python3 …/app.py …`). The
/// script is what the interpreter runs ([`script`]).
pub fn shorten(words: &[String], fits: impl Fn(&str) -> bool) -> String {
    let whole = words.join(" ");
    if words.len() < 2 || fits(&whole) {
        return whole;
    }
    let script = script(words);
    let (head, tail) = words.split_at(script + 1);
    let head = head.join(" ");
    let more = if tail.is_empty() { "" } else { " …" };
    // The most trailing arguments that fit after the head.
    for keep in (0..tail.len()).rev() {
        let candidate = match keep {
            0 => format!("{head} …"),
            k => format!("{head} … {}", tail[tail.len() - k..].join(" ")),
        };
        if fits(&candidate) {
            return candidate;
        }
    }
    let interpreter = &words[0];
    let name = &words[script];
    if script > 1 {
        let candidate = format!("{interpreter} … {name}{more}");
        if fits(&candidate) {
            return candidate;
        }
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    let short = if base.len() < name.len() {
        format!("…/{base}")
    } else {
        base.to_string()
    };
    let candidate = format!("{interpreter} {short}{more}");
    if fits(&candidate) {
        return candidate;
    }
    short
}

/// The index of the script of `python3 [options] app.py args`: the first word after the
/// interpreter that is not an option or an option's value; the module of `-m`, the code of
/// `-c`.
fn script(words: &[String]) -> usize {
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-X" | "-W" | "--check-hash-based-pycs" => i += 2,
            "-m" | "-c" => return (i + 1).min(words.len() - 1),
            w if w.starts_with('-') => i += 1,
            _ => return i,
        }
    }
    words.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    fn within(n: usize) -> impl Fn(&str) -> bool {
        move |s: &str| s.chars().count() <= n
    }

    #[test]
    fn a_command_that_fits_is_whole() {
        let w = words("python3 app.py --threads 4");
        assert_eq!(shorten(&w, within(100)), "python3 app.py --threads 4");
    }

    #[test]
    fn the_script_name_stays_visible_however_long_the_arguments() {
        let long = format!(
            "python3 -u serve.py {} --port 8080",
            "--flag ".repeat(40).trim()
        );
        let w = words(&long);
        let short = shorten(&w, within(40));
        assert!(short.chars().count() <= 40, "{short}");
        assert!(short.starts_with("python3 -u serve.py … "), "{short}");
        assert!(short.ends_with("--port 8080"), "{short}");
        let tiny = shorten(&w, within(22));
        assert_eq!(tiny, "python3 -u serve.py …");
        let w = words("python3 -X importtime -W error /very/long/path/to/the/project/app.py x");
        assert_eq!(shorten(&w, within(20)), "python3 …/app.py …");
        assert_eq!(shorten(&w, within(10)), "…/app.py");
        let w = words("python3 -X importtime -W error app.py x");
        assert_eq!(shorten(&w, within(20)), "python3 … app.py …");
        let w = words("python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www");
        assert_eq!(shorten(&w, within(34)), "python3 -m http.server … /srv/www");
        let w = words("python3 /very/long/path/to/the/project/app.py");
        assert_eq!(shorten(&w, within(20)), "python3 …/app.py");
    }
}
