//! `vane plugin new`: writes a ready policy project in Rust, Python, JavaScript or C, outside
//! vane's repository. Everything it writes is embedded in the binary: the WIT (and for Rust the
//! whole kit, which carries it), a build script with pinned tools, a policy that builds and
//! passes `vane plugin test` as written, and a README. The templates are `host/templates/`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugin::WIT_VERSION;

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust with vane's kit (cargo, target wasm32-wasip2).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    #[value(name = "js", alias = "javascript")]
    JavaScript,
    /// C with wasi-libc and wit-bindgen.
    C,
}

/// One file of a project: where it goes and what it holds (templates still hold `{{...}}`).
struct File {
    /// The path inside the project.
    path: &'static str,
    /// The contents.
    text: &'static str,
}

/// A file whose contents are `$path` under `host/templates/`, written to `$to`.
macro_rules! template {
    ($to:literal, $path:literal) => {
        File {
            path: $to,
            text: include_str!(concat!("../templates/", $path)),
        }
    };
}

/// vane's WIT, which every project needs (a Rust project has it inside its copy of the kit).
const WIT: &str = include_str!("../../plugins/kit/wit/balancer.wit");

/// The kit's file `$path`, copied to `vane-plugin-kit/$path`.
macro_rules! kit_file {
    ($path:literal) => {
        File {
            path: concat!("vane-plugin-kit/", $path),
            text: include_str!(concat!("../../plugins/kit/", $path)),
        }
    };
}

/// vane's kit for Rust policies, copied into a Rust project as `vane-plugin-kit/`: every file
/// its Cargo.toml `include`s.
const KIT: &[File] = &[
    kit_file!("Cargo.toml"),
    kit_file!("src/allocator.rs"),
    kit_file!("src/config.rs"),
    kit_file!("src/guest.rs"),
    kit_file!("src/hash.rs"),
    kit_file!("src/least_loaded.rs"),
    kit_file!("src/lib.rs"),
    kit_file!("src/peak_ewma.rs"),
    kit_file!("src/request_key.rs"),
    kit_file!("src/ring.rs"),
    kit_file!("src/schedule.rs"),
    kit_file!("wit/balancer.wit"),
];

/// What a language's project holds beyond the README, and what its README says.
struct Recipe {
    /// The language's name, for people.
    title: &'static str,
    /// The file holding the policy.
    source: &'static str,
    /// The project's own files.
    files: &'static [File],
    /// Whether the project needs `wit/` beside its files (Rust has it in the kit).
    wants_wit: bool,
    /// The README's line per file, before the WIT's.
    file_lines: &'static str,
    /// The README's paragraph on what the build needs and installs.
    requirements: &'static str,
    /// Flags `vane plugin test` and `vane demo` need for this language's runtime.
    test_flags: &'static str,
    /// `[policy]` lines this language's runtime needs.
    limits: &'static str,
}

impl Language {
    /// The flags `vane plugin test` and `vane demo` need for this language's runtime (with a
    /// leading space), or none.
    pub fn vane_flags(self) -> &'static str {
        self.recipe().test_flags
    }

    /// The language's recipe.
    fn recipe(self) -> Recipe {
        match self {
            Language::Rust => Recipe {
                title: "Rust",
                source: "src/lib.rs",
                files: &[
                    template!("Cargo.toml", "rust/Cargo.toml"),
                    template!("build.sh", "rust/build.sh"),
                    template!("src/lib.rs", "rust/src/lib.rs"),
                    template!(".gitignore", "rust/gitignore"),
                ],
                wants_wit: false,
                file_lines: "- `src/lib.rs`: the policy, a `Policy` of vane's kit.\n\
                    - `Cargo.toml`, `build.sh`: the crate and its build.\n\
                    - `vane-plugin-kit/`: vane's kit, as this vane carries it.\n",
                requirements: "`build.sh` needs Rust from rustup (1.95 or later) and adds the \
                    `wasm32-wasip2` target if it is missing. The first build compiles the \
                    bindings' generator (about a minute); the component is about 70 KB.",
                test_flags: "",
                limits: "",
            },
            Language::Python => Recipe {
                title: "Python",
                source: "app.py",
                files: &[
                    template!("app.py", "python/app.py"),
                    template!("build.sh", "python/build.sh"),
                    template!(".gitignore", "python/gitignore"),
                ],
                wants_wit: true,
                file_lines: "- `app.py`: the policy, the class `Policy`.\n\
                    - `build.sh`: the build.\n",
                requirements: "`build.sh` needs python3 with pip; the first run installs \
                    componentize-py (pinned) into vane's tool cache, `$VANE_TOOLS_DIR` (else \
                    `$XDG_CACHE_HOME/vane/tools` or `~/.cache/vane/tools`). The component \
                    embeds CPython (about 18 MB); vane compiles it once and caches the result.",
                test_flags: "",
                limits: "",
            },
            Language::JavaScript => Recipe {
                title: "JavaScript",
                source: "policy.js",
                files: &[
                    template!("policy.js", "javascript/policy.js"),
                    template!("build.sh", "javascript/build.sh"),
                    template!(".gitignore", "javascript/gitignore"),
                    File {
                        path: "package.json",
                        text: include_str!("../../examples/javascript/package.json"),
                    },
                    File {
                        path: "package-lock.json",
                        text: include_str!("../../examples/javascript/package-lock.json"),
                    },
                ],
                wants_wit: true,
                file_lines: "- `policy.js`: the policy, the exported object `policy`.\n\
                    - `build.sh`, `package.json`, `package-lock.json`: the build and the tools \
                    it pins.\n",
                requirements: "`build.sh` needs node (20 or later) and npm; the first run \
                    installs componentize-js (pinned in `package-lock.json`) into vane's tool \
                    cache, `$VANE_TOOLS_DIR` (else \
                    `$XDG_CACHE_HOME/vane/tools` or `~/.cache/vane/tools`). The component embeds \
                    SpiderMonkey (about 12 MB), whose heap outgrows vane's default 16 MiB and \
                    whose garbage collector pauses for milliseconds now and then: hence the \
                    limits below.",
                test_flags: " --memory-limit 64MiB --pick-timeout 5ms",
                limits: "\n    memory_limit = \"64MiB\"\n    pick_timeout = \"5ms\"",
            },
            Language::C => Recipe {
                title: "C",
                source: "policy.c",
                files: &[
                    template!("policy.c", "c/policy.c"),
                    template!("build.sh", "c/build.sh"),
                    template!(".gitignore", "c/gitignore"),
                ],
                wants_wit: true,
                file_lines: "- `policy.c`: the policy, the functions `exports_vane_balancer_policy_*`.\n\
                    - `build.sh`: the build.\n",
                requirements: "`build.sh` installs what is missing on Debian 12 or later: clang, \
                    lld and wasi-libc (apt, with sudo unless root), wit-bindgen-cli (built with \
                    cargo, a few minutes once; needs Rust 1.88 or later) and wasm-tools (PyPI), \
                    into vane's tool cache, `$VANE_TOOLS_DIR` (else \
                    `$XDG_CACHE_HOME/vane/tools` or `~/.cache/vane/tools`). While \
                    the policy uses only wasi-libc's memory and string functions the component \
                    imports no WASI and is about 20 KB; `printf` and the like import WASI \
                    preview 1, and the build then adds WASI's adapter (fetched once from \
                    crates.io), which takes it to about 60 KB. What it prints goes to vane's \
                    log.",
                test_flags: "",
                limits: "",
            },
        }
    }
}

/// Names Cargo or Rust keep for themselves (keywords, the standard crates), and the kit's.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "vane-plugin-kit",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Checks that `name` can name a project in every language: a Cargo package, a file name and
/// a README title. Lower-case ASCII letters, digits and `-`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "{name:?} cannot name a plugin: use lower-case letters, digits and '-', starting \
             with a letter and not ending with '-' (at most 64), as in \"fewest-failures\""
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "{name:?} cannot name a plugin: Rust or Cargo keeps it (a keyword, a standard \
             crate or the kit); choose another, as in \"fewest-failures\""
        ));
    }
    Ok(())
}

/// Writes a project for the policy `name` in `language` into `dir`, which must not exist or be
/// an empty folder; returns the files written, relative to `dir`. If writing fails, what was
/// written is removed again (and `dir` itself, if this made it).
pub fn create(dir: &Path, name: &str, language: Language) -> anyhow::Result<Vec<PathBuf>> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let existed = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty: choose another name or --dir",
                    dir.display()
                );
            }
            true
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => bail!("cannot write a project into {}: {err}", dir.display()),
    };
    let files = project_files(name, language);
    let written = (|| {
        if !existed {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_all(dir, &files)
    })();
    if written.is_err() {
        if existed {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
            }
        } else {
            let _ = fs::remove_dir_all(dir);
        }
    }
    written?;
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// Every file of the project `name` in `language`: where it goes and what it holds.
fn project_files(name: &str, language: Language) -> Vec<(PathBuf, String)> {
    let recipe = language.recipe();
    let render = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    let mut files: Vec<(PathBuf, String)> = recipe
        .files
        .iter()
        .map(|file| (PathBuf::from(file.path), render(file.text)))
        .collect();
    if recipe.wants_wit {
        files.push(("wit/balancer.wit".into(), WIT.to_owned()));
    } else {
        files.extend(
            KIT.iter()
                .map(|f| (PathBuf::from(f.path), f.text.to_owned())),
        );
    }
    files.push(("README.md".into(), readme(name, &recipe)));
    files
}

/// Writes `files` into the new folder `dir`.
fn write_all(dir: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    for (path, text) in files {
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&to, text).with_context(|| format!("cannot write {}", to.display()))?;
        if to.extension().is_some_and(|ext| ext == "sh") {
            make_executable(&to)?;
        }
    }
    Ok(())
}

/// Lets whoever may read the script at `path` run it (`bash build.sh` works either way).
#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let cannot = || format!("cannot make {} executable", path.display());
    let mode = fs::metadata(path)
        .with_context(cannot)?
        .permissions()
        .mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | (mode & 0o444) >> 2))
        .with_context(cannot)
}

/// Scripts are run with `bash build.sh` where there are no permission bits.
#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The project's README.md.
fn readme(name: &str, recipe: &Recipe) -> String {
    let wit_home = if recipe.wants_wit {
        "this folder"
    } else {
        "`vane-plugin-kit/`"
    };
    include_str!("../templates/README.md")
        .replace("{{language}}", recipe.title)
        .replace("{{source}}", recipe.source)
        .replace("{{test_flags}}", recipe.test_flags)
        .replace("{{requirements}}", &unwrap_paragraph(recipe.requirements))
        .replace("{{limits}}", recipe.limits)
        .replace("{{files}}", recipe.file_lines)
        .replace("{{wit_home}}", wit_home)
        .replace("{{wit_version}}", WIT_VERSION)
        .replace("{{name}}", name)
}

/// `text` wrapped at 96 columns (the recipes are written as one line each).
fn unwrap_paragraph(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > 96 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_every_language_are_taken() {
        for name in ["fewest-failures", "p2c", "a"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        for name in [
            "",
            "Fewest",
            "1st",
            "fewest_failures",
            "a-",
            "a b",
            "../x",
            "é",
        ] {
            let err = check_name(name).expect_err(name);
            assert!(err.contains("lower-case letters"), "{err}");
        }
        for name in ["vane-plugin-kit", "fn", "std", "test"] {
            let err = check_name(name).expect_err(name);
            assert!(err.contains("Rust or Cargo keeps it"), "{err}");
        }
    }

    /// Every language's project is whole: no placeholder is left, and its README says how to
    /// test what it builds.
    #[test]
    fn every_project_is_filled_in() {
        let languages = [
            Language::Rust,
            Language::Python,
            Language::JavaScript,
            Language::C,
        ];
        for language in languages {
            let files = project_files("my-policy", language);
            for (path, text) in &files {
                let file = path.display();
                assert!(!text.contains("{{"), "{language:?} {file}: {text}");
            }
            let (_, readme) = files
                .iter()
                .find(|(p, _)| p == Path::new("README.md"))
                .unwrap();
            assert!(
                readme.contains("vane plugin test my-policy.wasm"),
                "{readme}"
            );
        }
    }

    /// Every file the kit's Cargo.toml packages is in the copy a Rust project gets.
    #[test]
    fn the_kit_copy_is_the_whole_kit() {
        let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/kit");
        let mut on_disk = vec!["Cargo.toml".to_owned()];
        for folder in ["src", "wit"] {
            for entry in fs::read_dir(kit.join(folder)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                on_disk.push(format!("{folder}/{name}"));
            }
        }
        on_disk.sort();
        let copied: Vec<_> = KIT
            .iter()
            .map(|f| f.path.trim_start_matches("vane-plugin-kit/").to_owned())
            .collect();
        assert_eq!(copied, on_disk);
    }

    #[test]
    fn a_project_is_written_with_its_name_and_refuses_a_full_folder() {
        let dir = std::env::temp_dir().join(format!("vane-scaffold-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let files = create(&dir.join("my-policy"), "my-policy", Language::Rust).unwrap();
        assert!(files.contains(&PathBuf::from("vane-plugin-kit/wit/balancer.wit")));
        let manifest = fs::read_to_string(dir.join("my-policy/Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-policy\""), "{manifest}");
        let build = fs::read_to_string(dir.join("my-policy/build.sh")).unwrap();
        assert!(
            build.contains("release/my_policy.wasm\" my-policy.wasm"),
            "{build}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("my-policy/build.sh"))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o100, 0o100, "the owner may run build.sh");
        }

        let err = create(&dir.join("my-policy"), "my-policy", Language::C).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        fs::write(dir.join("a-file"), "").unwrap();
        let err = create(&dir.join("a-file"), "my-policy", Language::C).unwrap_err();
        assert!(err.to_string().contains("cannot write a project"), "{err}");
        // An existing empty folder is filled in place.
        fs::create_dir(dir.join("empty")).unwrap();
        create(&dir.join("empty"), "my-policy", Language::C).unwrap();
        assert!(dir.join("empty/build.sh").is_file());
        fs::remove_dir_all(dir.join("empty")).unwrap();
        // Nothing was left behind beside them.
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["a-file", "my-policy"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
