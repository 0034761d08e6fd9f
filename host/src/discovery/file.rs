//! A group's members from a file any tool can write (as Prometheus' file-based discovery):
//! JSON, a list of backends or `{"backends": [...]}`, or TOML, `[[backends]]` tables; each
//! backend an `address` (`ip:port`) and optionally a `name`, a `weight` and `tags`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::{Answer, Member};

/// One backend as the file lists it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listed {
    address: String,
    name: Option<String>,
    weight: Option<i64>,
    #[serde(default)]
    tags: Vec<String>,
}

/// The file's top level: a list, or a table holding one under `backends`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Listing {
    List(Vec<Listed>),
    Table { backends: Vec<Listed> },
}

/// `Table` alone, for TOML, whose top level is always a table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlListing {
    #[serde(default)]
    backends: Vec<Listed>,
}

/// The members `path` lists; an error names the file and what is wrong. An empty list is an
/// answer (the file says there are none); a file that cannot be read or parsed is not.
pub(super) fn read(path: &Path) -> Result<Answer, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let listed = parse(path, &text).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(Answer {
        members: listed,
        ttl: None,
    })
}

/// The members `text` (the content of `path`, JSON or TOML by its extension) lists.
fn parse(path: &Path, text: &str) -> Result<Vec<Member>, String> {
    let listed = if is_toml(path) {
        toml::from_str::<TomlListing>(text)
            .map_err(|err| err.to_string().trim_end().to_owned())?
            .backends
    } else {
        match serde_json::from_str::<Listing>(text) {
            Ok(Listing::List(list) | Listing::Table { backends: list }) => list,
            // Untagged enums say only that nothing matched: ask the list for its reason.
            Err(_) => serde_json::from_str::<Vec<Listed>>(text).map_err(|err| {
                format!("{err} (expected a list of backends, or {{\"backends\": [...]}})")
            })?,
        }
    };
    let mut labels = HashSet::new();
    let mut members = Vec::with_capacity(listed.len());
    for (index, entry) in listed.into_iter().enumerate() {
        let address: SocketAddr = entry.address.trim().parse().map_err(|_| {
            format!(
                "backend {index}: {:?} is not an address of the form ip:port",
                entry.address
            )
        })?;
        let weight = entry
            .weight
            .map(crate::config::weight)
            .transpose()
            .map_err(|message| format!("backend {index}: weight {message}"))?;
        let label = match entry.name {
            Some(name) if name.trim().is_empty() || name.contains('/') => {
                return Err(format!(
                    "backend {index}: name {name:?} must not be empty or hold `/`"
                ));
            }
            Some(name) => name,
            None => address.to_string(),
        };
        if !labels.insert(label.clone()) {
            return Err(format!("backend {index}: {label:?} is listed twice"));
        }
        members.push(Member {
            label,
            address,
            weight,
            tags: entry.tags,
            host: None,
        });
    }
    Ok(members)
}

/// Whether `path` names a TOML file (`.toml`); anything else is read as JSON.
fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(path: &str, text: &str) -> Result<Vec<String>, String> {
        parse(Path::new(path), text).map(|members| members.into_iter().map(|m| m.label).collect())
    }

    #[test]
    fn json_and_toml_list_the_same_backends() {
        let json = r#"[{"address": "127.0.0.1:9001", "weight": 2},
                       {"address": "127.0.0.1:9002", "name": "b", "tags": ["eu"]}]"#;
        assert_eq!(labels("x.json", json).unwrap(), vec!["127.0.0.1:9001", "b"]);
        let table = r#"{"backends": [{"address": "127.0.0.1:9001"}]}"#;
        assert_eq!(labels("x.json", table).unwrap(), vec!["127.0.0.1:9001"]);
        let toml = "[[backends]]\naddress = \"127.0.0.1:9001\"\nweight = 2\n\n[[backends]]\naddress = \"127.0.0.1:9002\"\nname = \"b\"\n";
        assert_eq!(labels("x.toml", toml).unwrap(), vec!["127.0.0.1:9001", "b"]);
        assert_eq!(labels("x.json", "[]").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_bad_file_says_which_entry_and_why() {
        let cases = [
            (
                r#"[{"address": "api:80"}]"#,
                "backend 0: \"api:80\" is not an address",
            ),
            (
                r#"[{"address": "127.0.0.1:1"}, {"address": "127.0.0.1:1"}]"#,
                "backend 1: \"127.0.0.1:1\" is listed twice",
            ),
            (
                r#"[{"address": "127.0.0.1:1", "weight": 0}]"#,
                "weight must be between 1",
            ),
            (
                r#"[{"address": "127.0.0.1:1", "port": 2}]"#,
                "unknown field `port`",
            ),
            (r#"[{"address": "127.0.0.1:1""#, "EOF"),
        ];
        for (text, expected) in cases {
            let error = labels("x.json", text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
