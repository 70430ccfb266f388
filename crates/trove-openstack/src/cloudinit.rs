//! The guest's files as cloud-init user data (`#cloud-config` with `write_files`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_yaml::{Mapping, Value};
use trove_compute::{DriverError, InjectedFile};

/// Renders `files` as `#cloud-config` user data: one `write_files` entry per file with
/// `encoding: b64`, `owner: <owner>`, `path` and the base64 content.
///
/// `snippet` is the operator's `<cloudinit_location>/<manager>.cloudinit`, if any: its own
/// `write_files` come first, its other keys are kept.
pub fn render_user_data(
    files: &[InjectedFile],
    owner: &str,
    snippet: Option<&str>,
) -> Result<String, DriverError> {
    let mut doc = match snippet {
        Some(text) => match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Mapping(map)) => map,
            Ok(Value::Null) => Mapping::new(),
            Ok(_) => {
                return Err(DriverError::Invalid(
                    "the cloud-init snippet is not a YAML mapping".into(),
                ))
            }
            Err(e) => {
                return Err(DriverError::Invalid(format!(
                    "the cloud-init snippet is not valid YAML: {e}"
                )))
            }
        },
        None => Mapping::new(),
    };
    let key = Value::String("write_files".into());
    let mut entries = match doc.remove(&key) {
        Some(Value::Sequence(seq)) => seq,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(DriverError::Invalid(
                "write_files of the cloud-init snippet is not a list".into(),
            ))
        }
    };
    for file in files {
        let mut entry = Mapping::new();
        entry.insert("encoding".into(), "b64".into());
        entry.insert("owner".into(), owner.into());
        entry.insert("path".into(), file.path.as_str().into());
        entry.insert("content".into(), B64.encode(file.content.as_bytes()).into());
        entries.push(Value::Mapping(entry));
    }
    doc.insert(key, Value::Sequence(entries));
    let body = serde_yaml::to_string(&Value::Mapping(doc))
        .map_err(|e| DriverError::Invalid(format!("cannot render the cloud-config: {e}")))?;
    Ok(format!("#cloud-config\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads user data back the way cloud-init does: YAML, then base64 per entry.
    fn decode(user_data: &str) -> Vec<(String, String, String)> {
        assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
        let doc: Value = serde_yaml::from_str(user_data).unwrap();
        doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["encoding"].as_str(), Some("b64"));
                let content = B64.decode(e["content"].as_str().unwrap()).unwrap();
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["owner"].as_str().unwrap().to_owned(),
                    String::from_utf8(content).unwrap(),
                )
            })
            .collect()
    }

    fn file(path: &str, content: &str) -> InjectedFile {
        InjectedFile {
            path: path.into(),
            content: content.into(),
        }
    }

    #[test]
    fn files_decode_back_exactly() {
        let files = vec![
            file(
                "/etc/trove/conf.d/guest_info.conf",
                "[DEFAULT]\nguest_id = abc\ndatastore_manager = mariadb\n",
            ),
            file(
                "/etc/trove/conf.d/trove-guestagent.conf",
                "# yaml-ish: {a: b}\n[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/\n\tü\n",
            ),
        ];
        let data = render_user_data(&files, "ubuntu:root", None).unwrap();
        let got = decode(&data);
        assert_eq!(got.len(), 2);
        for ((path, owner, content), f) in got.iter().zip(&files) {
            assert_eq!(path, &f.path);
            assert_eq!(owner, "ubuntu:root");
            assert_eq!(content, &f.content);
        }
    }

    #[test]
    fn no_files_still_valid_cloud_config() {
        let data = render_user_data(&[], "ubuntu:root", None).unwrap();
        assert!(decode(&data).is_empty());
    }

    #[test]
    fn snippet_is_merged_with_its_files_first() {
        let snippet = "#cloud-config\npackages: [htop]\nwrite_files:\n  - path: /etc/motd\n    content: hello\n";
        let data = render_user_data(
            &[file("/etc/x.conf", "x=1\n")],
            "trove:trove",
            Some(snippet),
        )
        .unwrap();
        let doc: Value = serde_yaml::from_str(&data).unwrap();
        assert_eq!(doc["packages"][0].as_str(), Some("htop"));
        let wf = doc["write_files"].as_sequence().unwrap();
        assert_eq!(wf.len(), 2);
        assert_eq!(wf[0]["path"].as_str(), Some("/etc/motd"));
        assert_eq!(wf[1]["path"].as_str(), Some("/etc/x.conf"));
        assert_eq!(wf[1]["owner"].as_str(), Some("trove:trove"));
    }

    #[test]
    fn bad_snippet_is_refused() {
        assert!(matches!(
            render_user_data(&[], "u:g", Some("- a list")),
            Err(DriverError::Invalid(_))
        ));
        assert!(matches!(
            render_user_data(&[], "u:g", Some("write_files: 3")),
            Err(DriverError::Invalid(_))
        ));
    }
}
