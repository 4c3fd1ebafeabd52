//! Whose code a frame is: the user's own, or a library's (the standard library, an installed
//! package, a frozen module), and how to name its file so that two files of the same name
//! part. Pure string work on the paths CPython records in code objects.

/// Where a frame's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The program's own code: what the user can change.
    User,
    /// An installed package (`site-packages`, `dist-packages`).
    Package,
    /// The standard library, frozen modules, and code without a file (`<string>`).
    Stdlib,
}

impl Origin {
    pub fn is_user(self) -> bool {
        self == Origin::User
    }
}

/// Where the code in `file` comes from, by its path.
pub fn origin(file: &str) -> Origin {
    if file.contains("/site-packages/") || file.contains("/dist-packages/") {
        Origin::Package
    } else if file.starts_with('<') || stdlib_tail(file).is_some() {
        Origin::Stdlib
    } else {
        Origin::User
    }
}

/// The part of a standard-library path after `lib/pythonX.Y/` (`json/decoder.py`), if it
/// is one.
fn stdlib_tail(file: &str) -> Option<&str> {
    let at = file.rfind("/lib/python")?;
    let rest = &file[at + "/lib/python".len()..];
    // `3.12/…`, `3/…` (Debian's shared dist-packages are caught above), `3.13t/…`.
    let (version, tail) = rest.split_once('/')?;
    version
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == 't')
        .then_some(tail)
}

/// A file as a user reads it: relative to the program's working directory `cwd` for the
/// user's own files inside it, `package/module.py` for installed packages and the standard
/// library, the path as CPython has it otherwise.
pub fn display_path<'a>(file: &'a str, cwd: Option<&str>) -> &'a str {
    for marker in ["/site-packages/", "/dist-packages/"] {
        if let Some((_, tail)) = file.rsplit_once(marker) {
            return tail;
        }
    }
    if let Some(tail) = stdlib_tail(file) {
        return tail;
    }
    if let Some(cwd) = cwd.filter(|c| !c.is_empty()) {
        let cwd = cwd.trim_end_matches('/');
        if let Some(rest) = file.strip_prefix(cwd).and_then(|r| r.strip_prefix('/')) {
            return rest;
        }
    }
    file.strip_prefix("./").unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_code_is_what_is_not_installed_or_standard() {
        assert_eq!(origin("app.py"), Origin::User);
        assert_eq!(origin("/srv/app/app.py"), Origin::User);
        assert_eq!(
            origin("/venv/lib/python3.12/site-packages/flask/app.py"),
            Origin::Package
        );
        assert_eq!(
            origin("/usr/lib/python3/dist-packages/numpy/core/fromnumeric.py"),
            Origin::Package
        );
        assert_eq!(
            origin("/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py"),
            Origin::Stdlib
        );
        assert_eq!(origin("/usr/lib/python3.13t/threading.py"), Origin::Stdlib);
        assert_eq!(origin("<frozen importlib._bootstrap>"), Origin::Stdlib);
        assert_eq!(origin("<string>"), Origin::Stdlib);
        // A user's folder that happens to be called lib/ is theirs.
        assert_eq!(origin("/home/me/lib/pythonic/tool.py"), Origin::User);
    }

    #[test]
    fn files_of_the_same_name_are_told_apart() {
        let cwd = Some("/srv/app");
        assert_eq!(display_path("/srv/app/app.py", cwd), "app.py");
        assert_eq!(display_path("/srv/app/web/app.py", cwd), "web/app.py");
        assert_eq!(
            display_path("/venv/lib/python3.12/site-packages/flask/app.py", cwd),
            "flask/app.py"
        );
        assert_eq!(
            display_path("/usr/lib/python3.11/json/decoder.py", cwd),
            "json/decoder.py"
        );
        assert_eq!(display_path("/elsewhere/app.py", cwd), "/elsewhere/app.py");
        assert_eq!(display_path("./app.py", None), "app.py");
        assert_eq!(display_path("/srv/app2/x.py", cwd), "/srv/app2/x.py");
    }
}
