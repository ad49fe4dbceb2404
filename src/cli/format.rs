//! `-o/--output`: the output format of every command; in `bundle create`, a value that is
//! not a format names where to write the bundle (`--output PATH`, as the bundle issue asks),
//! so the contract's `-o FORMAT` keeps its meaning everywhere.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::ValueEnum;
use clap::builder::{PossibleValue, TypedValueParser};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Progress lines and a summary.
    Text,
    /// One JSON document on stdout.
    Json,
    /// One YAML document on stdout.
    Yaml,
}

/// One `-o/--output` value as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputArg {
    /// `text`, `json` or `yaml`.
    Format(OutputFormat),
    /// Anything else: where `bundle create` writes (refused by every other command).
    Path(PathBuf),
}

/// Parses an [`OutputArg`]; help and completions still list the three formats.
#[derive(Clone, Copy, Debug)]
pub struct OutputArgParser;

impl TypedValueParser for OutputArgParser {
    type Value = OutputArg;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<OutputArg, clap::Error> {
        if let Some(f) = value
            .to_str()
            .and_then(|s| OutputFormat::from_str(s, false).ok())
        {
            return Ok(OutputArg::Format(f));
        }
        if value.is_empty() {
            return Err(cmd.clone().error(
                clap::error::ErrorKind::InvalidValue,
                "'--output' needs a value: text, json or yaml",
            ));
        }
        Ok(OutputArg::Path(value.into()))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            OutputFormat::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The format the values settle on (the last one given, `text` when none) and the path among
/// them, if any; `Err` when a path is given where only a format is allowed, or twice.
pub fn settle(
    values: &[OutputArg],
    paths_allowed: bool,
) -> Result<(OutputFormat, Option<PathBuf>), String> {
    let mut format = OutputFormat::Text;
    let mut path: Option<PathBuf> = None;
    for v in values {
        match v {
            OutputArg::Format(f) => format = *f,
            OutputArg::Path(p) if !paths_allowed => {
                return Err(format!(
                    "invalid value '{}' for '--output <FORMAT>': expected text, json or yaml",
                    p.display()
                ));
            }
            OutputArg::Path(p) => {
                if let Some(first) = path.replace(p.clone()) {
                    return Err(format!(
                        "'--output' names where to write the bundle twice ({} and {}): give one",
                        first.display(),
                        p.display()
                    ));
                }
            }
        }
    }
    Ok((format, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OutputArg> {
        let cmd = clap::Command::new("t");
        v.iter()
            .map(|s| {
                OutputArgParser
                    .parse_ref(&cmd, None, OsStr::new(s))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn formats_settle_on_the_last_and_paths_only_where_allowed() {
        assert_eq!(settle(&[], false), Ok((OutputFormat::Text, None)));
        assert_eq!(
            settle(&args(&["json", "yaml"]), false),
            Ok((OutputFormat::Yaml, None))
        );
        let e = settle(&args(&["xml"]), false).unwrap_err();
        assert!(
            e.contains("'xml'") && e.contains("text, json or yaml"),
            "{e}"
        );
        assert_eq!(
            settle(&args(&["json", "out.tar"]), true),
            Ok((OutputFormat::Json, Some("out.tar".into())))
        );
        let e = settle(&args(&["a", "b"]), true).unwrap_err();
        assert!(e.contains("twice (a and b)"), "{e}");
        // Case matters, as it did for the value enum: `JSON` is a path.
        assert_eq!(args(&["JSON"]), vec![OutputArg::Path("JSON".into())]);
        let cmd = clap::Command::new("t");
        assert!(
            OutputArgParser
                .parse_ref(&cmd, None, OsStr::new(""))
                .is_err()
        );
    }
}
