//! Helm chart archives (the `.tgz` a chart's layer holds) read as one pass over a stream: gzip
//! and tar are decoded as the bytes arrive, nothing is unpacked to disk, and only the few files
//! a person reads are kept (`Chart.yaml`, `values.yaml`, `requirements.yaml`, the README).
//!
//! Charts are archives users upload, so every read is bounded by [`Limits`] and each way an
//! archive can be hostile is its own [`ChartError`] naming the limit or the entry: a compressed
//! stream too long, a gzip bomb (what it unpacks to), too many entries, a kept file too large, a
//! path that climbs out of the chart's directory, a link or device, a truncated or corrupt stream,
//! YAML that does not parse (alias bombs and deep nesting included: the YAML parser bounds both).
//! The layout is Helm's: every entry lies in one top directory (`<name>/Chart.yaml`), whose
//! name is stripped.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::rc::Rc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::units::bytes;

/// How much of an archive is read before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The compressed archive.
    pub archive_bytes: u64,
    /// What it unpacks to, tar headers included (Helm's own limit is 100 MiB).
    pub unpacked_bytes: u64,
    /// Entries of any kind.
    pub entries: u64,
    /// Each kept file (`Chart.yaml`, `values.yaml`, `requirements.yaml`, the README).
    pub file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { archive_bytes: 64 << 20, unpacked_bytes: 100 << 20, entries: 5_000, file_bytes: 4 << 20 }
    }
}

/// Why a chart archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// The compressed stream is longer than [`Limits::archive_bytes`].
    #[error("the chart archive is larger than the limit of {}", bytes(*limit))]
    ArchiveTooLarge {
        /// The limit.
        limit: u64,
    },
    /// It unpacks to more than [`Limits::unpacked_bytes`].
    #[error("the chart unpacks to more than the limit of {}", bytes(*limit))]
    UnpackedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// It holds more than [`Limits::entries`] entries.
    #[error("the chart holds more than the limit of {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A kept file is larger than [`Limits::file_bytes`].
    #[error("{file} of the chart is {}, more than the limit of {}", bytes(*size), bytes(*limit))]
    FileTooLarge {
        /// The file, relative to the chart's directory.
        file: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry's path is absolute or climbs out of the chart's directory.
    #[error("the chart holds {path:?}, a path outside its directory")]
    UnsafePath {
        /// The path (cut to 200 characters).
        path: String,
    },
    /// An entry is a link, a device or another kind of special file.
    #[error("the chart holds {path:?}, a {what}: a chart may hold only files and directories")]
    NotAFile {
        /// The path (cut to 200 characters).
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// The stream ends early or is not a gzip-compressed tar.
    #[error("the chart archive is truncated or is not a gzip-compressed tar: {detail}")]
    Corrupt {
        /// What the decoder said.
        detail: String,
    },
    /// There is no `Chart.yaml` in the chart's directory.
    #[error("the chart has no Chart.yaml in its directory")]
    NoChartYaml,
    /// A YAML file does not parse.
    #[error("{file} of the chart is not valid YAML: {detail}")]
    Yaml {
        /// The file.
        file: String,
        /// Where and why.
        detail: String,
    },
    /// `Chart.yaml` parses but lacks what every chart has.
    #[error("Chart.yaml of the chart {detail}")]
    Invalid {
        /// What is wrong.
        detail: String,
    },
}

/// A chart's metadata: its `Chart.yaml`, or the config blob `helm push` writes (the same fields
/// as JSON). Scalars that YAML reads as numbers (`version: 1.0`) are kept as written text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMetadata {
    /// `v1` (Helm 2) or `v2`.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The chart's name.
    #[serde(default, deserialize_with = "scalar")]
    pub name: String,
    /// Its SemVer version.
    #[serde(default, deserialize_with = "scalar")]
    pub version: String,
    /// The version of the application it installs.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub app_version: String,
    /// One line about it.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `application` or `library`.
    #[serde(default, rename = "type", deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The Kubernetes versions it supports.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    /// Its home page.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub home: String,
    /// Its icon's URL.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub icon: String,
    /// Keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Where its sources are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Who maintains it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    /// Charts it depends on (`apiVersion: v2`; `v1` charts list them in `requirements.yaml`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Whether it is deprecated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// Its annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A maintainer of a chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintainer {
    /// Their name.
    #[serde(default, deserialize_with = "scalar")]
    pub name: String,
    /// Their e-mail address.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// Their URL.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// A chart a chart depends on (Harbor's `dependencies` addition lists these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Its name.
    #[serde(default, deserialize_with = "scalar")]
    pub name: String,
    /// The versions accepted.
    #[serde(default, deserialize_with = "scalar")]
    pub version: String,
    /// The repository it comes from.
    #[serde(default, deserialize_with = "scalar")]
    pub repository: String,
    /// The values path that enables it.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub condition: String,
    /// The name it is installed under.
    #[serde(default, deserialize_with = "scalar", skip_serializing_if = "String::is_empty")]
    pub alias: String,
}

/// A string, number or boolean as its text; null as empty.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
        Null(()),
    }
    Ok(match Option::<Scalar>::deserialize(d)? {
        Some(Scalar::Text(s)) => s,
        Some(Scalar::Int(n)) => n.to_string(),
        Some(Scalar::Float(f)) => f.to_string(),
        Some(Scalar::Bool(b)) => b.to_string(),
        Some(Scalar::Null(())) | None => String::new(),
    })
}

/// What a person reads of a chart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chart {
    /// Its `Chart.yaml`.
    pub metadata: ChartMetadata,
    /// Its README (`README.md`, else `README.txt` or `README`, any case), as text.
    pub readme: Option<String>,
    /// Its `values.yaml`, as written.
    pub values: Option<String>,
    /// What it depends on: `Chart.yaml`'s, else `requirements.yaml`'s.
    pub dependencies: Vec<Dependency>,
    /// Entries in the archive.
    pub entries: u64,
}

impl Chart {
    /// The bytes it holds (for a cache's weight).
    pub fn weight(&self) -> usize {
        let text = self.readme.as_ref().map_or(0, String::len) + self.values.as_ref().map_or(0, String::len);
        text + 1024 + 256 * self.dependencies.len()
    }
}

/// Reads a chart archive from `archive` (a gzip-compressed tar), within `limits`.
pub fn read(archive: impl Read, limits: &Limits) -> Result<Chart, ChartError> {
    let files = Files::read(archive, limits)?;
    files.parse()
}

/// The kept files of an archive, before parsing.
#[derive(Default)]
struct Files {
    chart_yaml: Option<Vec<u8>>,
    values_yaml: Option<Vec<u8>>,
    requirements_yaml: Option<Vec<u8>>,
    /// The README and how good its name is (0 best).
    readme: Option<(u8, Vec<u8>)>,
    entries: u64,
}

/// Which limit a counting reader ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    Archive,
    Unpacked,
}

/// Counts the bytes read through it and fails past `limit`, noting which limit in `hit`.
struct Bounded<R> {
    inner: R,
    left: u64,
    which: Hit,
    hit: Rc<Cell<Option<Hit>>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.hit.set(Some(self.which));
            return Err(io::Error::other("limit reached"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Files {
    fn read(archive: impl Read, limits: &Limits) -> Result<Files, ChartError> {
        let hit = Rc::new(Cell::new(None));
        let compressed = Bounded { inner: archive, left: limits.archive_bytes, which: Hit::Archive, hit: hit.clone() };
        let unpacked = Bounded {
            inner: flate2::read::GzDecoder::new(compressed),
            left: limits.unpacked_bytes,
            which: Hit::Unpacked,
            hit: hit.clone(),
        };
        let failed = |e: io::Error| match hit.get() {
            Some(Hit::Archive) => ChartError::ArchiveTooLarge { limit: limits.archive_bytes },
            Some(Hit::Unpacked) => ChartError::UnpackedTooLarge { limit: limits.unpacked_bytes },
            None => ChartError::Corrupt { detail: e.to_string() },
        };
        let mut archive = tar::Archive::new(unpacked);
        let mut files = Files::default();
        for entry in archive.entries().map_err(failed)? {
            let mut entry = entry.map_err(failed)?;
            files.entries += 1;
            if files.entries > limits.entries {
                return Err(ChartError::TooManyEntries { limit: limits.entries });
            }
            let kind = entry.header().entry_type();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let inside = inside_path(&path)?;
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Directory | tar::EntryType::XGlobalHeader => continue,
                other => return Err(ChartError::NotAFile { path: cut(&path), what: kind_name(other) }),
            }
            let Some(inside) = inside else {
                if path.rsplit('/').next() == Some("Chart.yaml") {
                    return Err(ChartError::UnsafePath { path: cut(&path) });
                }
                continue;
            };
            let slot = match inside.as_str() {
                "Chart.yaml" => Some(Slot::Chart),
                "values.yaml" => Some(Slot::Values),
                "requirements.yaml" => Some(Slot::Requirements),
                other => readme_rank(other).map(Slot::Readme),
            };
            let Some(slot) = slot else { continue };
            let size = entry.header().size().map_err(failed)?;
            if size > limits.file_bytes {
                return Err(ChartError::FileTooLarge { file: inside, size, limit: limits.file_bytes });
            }
            let mut content = Vec::with_capacity(size as usize);
            (&mut entry).take(limits.file_bytes + 1).read_to_end(&mut content).map_err(failed)?;
            if content.len() as u64 > limits.file_bytes {
                return Err(ChartError::FileTooLarge { file: inside, size, limit: limits.file_bytes });
            }
            match slot {
                Slot::Chart => files.chart_yaml = Some(content),
                Slot::Values => files.values_yaml = Some(content),
                Slot::Requirements => files.requirements_yaml = Some(content),
                Slot::Readme(rank) => {
                    if files.readme.as_ref().is_none_or(|(r, _)| rank <= *r) {
                        files.readme = Some((rank, content));
                    }
                }
            }
        }
        // The rest of the stream (the tar's padding, gzip's trailer) must be there and sound:
        // a stream cut after the last entry is as truncated as one cut inside it.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(failed)?;
        Ok(files)
    }

    fn parse(self) -> Result<Chart, ChartError> {
        let chart_yaml = self.chart_yaml.ok_or(ChartError::NoChartYaml)?;
        let metadata: ChartMetadata = yaml("Chart.yaml", &chart_yaml)?;
        metadata.check()?;
        let values = match self.values_yaml {
            Some(bytes) => {
                yaml::<serde_norway::Value>("values.yaml", &bytes)?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            None => None,
        };
        let dependencies = match (&self.requirements_yaml, metadata.dependencies.is_empty()) {
            (Some(bytes), true) => {
                #[derive(Deserialize)]
                struct Requirements {
                    #[serde(default)]
                    dependencies: Vec<Dependency>,
                }
                let r: Option<Requirements> = yaml("requirements.yaml", bytes)?;
                r.map(|r| r.dependencies).unwrap_or_default()
            }
            _ => metadata.dependencies.clone(),
        };
        let readme = self.readme.map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
        Ok(Chart { metadata, readme, values, dependencies, entries: self.entries })
    }
}

enum Slot {
    Chart,
    Values,
    Requirements,
    Readme(u8),
}

/// How good a README's name is (0 best), if it is one.
fn readme_rank(name: &str) -> Option<u8> {
    match name.to_ascii_lowercase().as_str() {
        "readme.md" => Some(0),
        "readme.txt" => Some(1),
        "readme" => Some(2),
        _ => None,
    }
}

impl ChartMetadata {
    /// Refuses metadata without what every chart has (a name, a version, a known API version).
    pub fn check(&self) -> Result<(), ChartError> {
        let invalid = |detail: &str| Err(ChartError::Invalid { detail: detail.to_owned() });
        if self.name.trim().is_empty() {
            return invalid("names no chart (name is missing)");
        }
        if self.version.trim().is_empty() {
            return invalid("gives no version");
        }
        if !self.api_version.is_empty() && !matches!(self.api_version.as_str(), "v1" | "v2") {
            return Err(ChartError::Invalid {
                detail: format!("has apiVersion {:?}; Helm knows v1 and v2", cut(&self.api_version)),
            });
        }
        Ok(())
    }
}

/// Parses a YAML file of the chart.
fn yaml<T: serde::de::DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T, ChartError> {
    serde_norway::from_slice(bytes).map_err(|e| ChartError::Yaml { file: file.to_owned(), detail: e.to_string() })
}

/// An entry's path relative to the chart's directory (`None`: the directory itself, or an entry
/// beside it), refused when it is absolute or climbs out.
fn inside_path(path: &str) -> Result<Option<String>, ChartError> {
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err(ChartError::UnsafePath { path: cut(path) });
    }
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(ChartError::UnsafePath { path: cut(path) });
    }
    Ok((parts.len() > 1).then(|| parts[1..].join("/")))
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "named pipe",
        _ => "special entry",
    }
}

/// At most 200 characters of a name from the archive, for a message.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip-compressed tar of `(path, content)` files.
    pub(crate) fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, content) in files {
            // The name is written as is (the builder would refuse `..` and absolute paths).
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, *content).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    const CHART: &[u8] = b"apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: 4.5\ndescription: A demo\n\
        dependencies:\n  - name: redis\n    version: '>=17'\n    repository: https://charts.example/\n";

    #[test]
    fn a_chart_is_read_with_its_readme_values_and_dependencies() {
        let tgz = archive(&[
            ("demo/Chart.yaml", CHART),
            ("demo/values.yaml", b"replicas: 2\n"),
            ("demo/README.md", b"# Demo\n"),
            ("demo/templates/deploy.yaml", b"kind: Deployment\n"),
            ("demo/charts/redis/Chart.yaml", b"name: redis\nversion: 17.0.0\n"),
        ]);
        let chart = read(&tgz[..], &Limits::default()).expect("chart");
        assert_eq!(chart.metadata.name, "demo");
        assert_eq!(chart.metadata.version, "1.2.3");
        assert_eq!(chart.metadata.app_version, "4.5", "a YAML number is kept as its text");
        assert_eq!(chart.readme.as_deref(), Some("# Demo\n"));
        assert_eq!(chart.values.as_deref(), Some("replicas: 2\n"));
        assert_eq!(chart.dependencies.len(), 1);
        assert_eq!(chart.dependencies[0].repository, "https://charts.example/");
        assert_eq!(chart.entries, 5);
    }

    #[test]
    fn a_v1_chart_lists_its_dependencies_in_requirements() {
        let tgz = archive(&[
            ("old/Chart.yaml", b"apiVersion: v1\nname: old\nversion: 0.1.0\n"),
            ("old/requirements.yaml", b"dependencies:\n- name: pg\n  version: 1.x\n  repository: '@stable'\n"),
            ("old/readme.txt", b"plain"),
        ]);
        let chart = read(&tgz[..], &Limits::default()).expect("chart");
        assert_eq!(chart.dependencies[0].name, "pg");
        assert_eq!(chart.readme.as_deref(), Some("plain"));
    }

    #[test]
    fn hostile_archives_are_refused_naming_the_limit() {
        let small = Limits { archive_bytes: 1 << 20, unpacked_bytes: 1 << 20, entries: 50, file_bytes: 4096 };
        let big_readme = vec![b'x'; 5000];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (archive(&[("c/Chart.yaml", CHART), ("c/README.md", &big_readme)]), "README.md of the chart is 4.9 KiB"),
            (archive(&[("c/Chart.yaml", CHART), ("c/../../etc/passwd", b"x")]), "outside its directory"),
            (archive(&[("/etc/Chart.yaml", CHART)]), "outside its directory"),
            (archive(&[("c/values.yaml", b"a: [")]), "no Chart.yaml"),
            (
                archive(&[("c/Chart.yaml", CHART), ("c/values.yaml", b"a: [\n")]),
                "values.yaml of the chart is not valid YAML",
            ),
            (archive(&[("c/Chart.yaml", b"name: x\n")]), "gives no version"),
            (archive(&[("c/Chart.yaml", b"apiVersion: v9\nname: x\nversion: 1\n")]), "apiVersion \"v9\""),
            (b"not gzip at all".to_vec(), "not a gzip-compressed tar"),
        ];
        for (tgz, expected) in cases {
            let error = read(&tgz[..], &small).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
        let many: Vec<(String, Vec<u8>)> = (0..60).map(|i| (format!("c/t/{i}.yaml"), Vec::new())).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(p, c)| (p.as_str(), &c[..])).collect();
        assert_eq!(read(&archive(&many)[..], &small), Err(ChartError::TooManyEntries { limit: 50 }));
        let bomb = archive(&[("c/Chart.yaml", CHART), ("c/zeros", &vec![0u8; 2 << 20])]);
        assert!(bomb.len() < 1 << 20, "compresses well");
        assert_eq!(read(&bomb[..], &small), Err(ChartError::UnpackedTooLarge { limit: 1 << 20 }));
        let long = Limits { archive_bytes: 100, ..small };
        assert_eq!(read(&bomb[..], &long), Err(ChartError::ArchiveTooLarge { limit: 100 }));
    }

    #[test]
    fn links_are_refused() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "c/values.yaml", "/etc/shadow").expect("link");
        let tgz = builder.into_inner().expect("tar").finish().expect("gzip");
        let error = read(&tgz[..], &Limits::default()).expect_err("link").to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn a_truncated_stream_is_refused_at_every_cut() {
        let tgz = archive(&[("c/Chart.yaml", CHART), ("c/values.yaml", b"a: 1\n")]);
        for cut in [10, tgz.len() / 2, tgz.len() - 9, tgz.len() - 1] {
            let error = read(&tgz[..cut], &Limits::default()).expect_err("truncated");
            assert!(matches!(error, ChartError::Corrupt { .. }), "cut at {cut}: {error}");
        }
    }

    #[test]
    fn a_yaml_alias_bomb_is_refused() {
        let mut bomb = String::from("apiVersion: v2\nname: b\nversion: 1.0.0\n");
        bomb.push_str("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, prev) in (b'b'..=b'k').zip(b'a'..) {
            let (i, prev) = (i as char, prev as char);
            bomb.push_str(&format!(
                "{i}: &{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let tgz = archive(&[("c/Chart.yaml", CHART), ("c/values.yaml", bomb.as_bytes())]);
        let error = read(&tgz[..], &Limits::default()).expect_err("bomb").to_string();
        assert!(error.contains("values.yaml of the chart is not valid YAML"), "{error}");
    }
}
