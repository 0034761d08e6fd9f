//! What a plugin is called in logs, `/policy` and metrics: the name the component carries, so
//! that a new build swapped in under the same file name shows its own name; else the name of
//! the file (through a symlink, the file it points to).

use std::path::Path;

use wasmparser::{ComponentName, ComponentNameSectionReader, KnownCustom, Parser, Payload};

/// The longest name taken from a component; a longer one is cut (on a character boundary).
const MAX_NAME: usize = 64;

/// The plugin's name: the component's own (its `component-name` section, as `wasm-tools
/// metadata add --name` writes it), else the stem of `file`, the file its bytes were read
/// from (through symlinks: a deploy's `policy.wasm -> fewest-v3.wasm` gives `fewest-v3`).
pub(crate) fn plugin_name(file: &Path, bytes: &[u8]) -> String {
    component_name(bytes).unwrap_or_else(|| match file.file_stem() {
        Some(stem) => stem.to_string_lossy().into_owned(),
        None => file.display().to_string(),
    })
}

/// The outer component's name from its `component-name` section, if it has one: made of
/// letters, digits and `._+:@-` (anything else becomes `_`, so a name reads as one word in a
/// log line) and cut to [`MAX_NAME`] bytes. Nested modules' and
/// components' names are not the plugin's.
fn component_name(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth > 0 => depth -= 1,
            Payload::CustomSection(section) if depth == 0 => {
                if let KnownCustom::ComponentName(reader) = section.as_known()
                    && let Some(name) = outer_name(reader)
                {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

/// The component's own name in a `component-name` section, cleaned up; `None` if it has none
/// or nothing but spaces and control characters.
fn outer_name(reader: ComponentNameSectionReader<'_>) -> Option<String> {
    let name = reader.into_iter().find_map(|subsection| match subsection {
        Ok(ComponentName::Component { name, .. }) => Some(name),
        _ => None,
    })?;
    let printed: String = name.chars().filter(|c| !c.is_control()).collect();
    let word = |c: char| c.is_ascii_alphanumeric() || "._+:@-".contains(c);
    let clean: String = printed
        .trim()
        .chars()
        .map(|c| if word(c) { c } else { '_' })
        .take(MAX_NAME)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty component whose `component-name` section names it `name`, as wasm-tools writes
    /// it: subsection 0 (the component's name), its length, then the name with its length.
    fn named_component(name: &str) -> Vec<u8> {
        let mut subsection = vec![name.len() as u8];
        subsection.extend_from_slice(name.as_bytes());
        let mut payload = vec![b"component-name".len() as u8];
        payload.extend_from_slice(b"component-name");
        payload.extend_from_slice(&[0, subsection.len() as u8]);
        payload.extend_from_slice(&subsection);
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        bytes.push(0); // a custom section
        bytes.push(payload.len() as u8);
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[test]
    fn the_components_own_name_wins_over_the_file() {
        let bytes = named_component("fewest-failures");
        assert_eq!(
            plugin_name(Path::new("/nowhere/policy.wasm"), &bytes),
            "fewest-failures"
        );
    }

    #[test]
    fn an_unnamed_component_is_named_by_its_file() {
        let bytes = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(
            plugin_name(Path::new("/nowhere/policy.wasm"), &bytes),
            "policy"
        );
        assert_eq!(
            plugin_name(Path::new("/nowhere/policy.wasm"), b"junk"),
            "policy"
        );
    }

    #[test]
    fn a_name_that_does_not_print_is_cleaned_or_ignored() {
        let bytes = named_component("  evil\nname\u{7} x=1 \u{202e}  ");
        assert_eq!(plugin_name(Path::new("p.wasm"), &bytes), "evilname_x_1__");
        let bytes = named_component(" \n ");
        assert_eq!(plugin_name(Path::new("p.wasm"), &bytes), "p");
        let long = "x".repeat(100);
        assert_eq!(
            plugin_name(Path::new("p.wasm"), &named_component(&long)).len(),
            MAX_NAME
        );
    }
}
