//! The results: rows of (scenario, implementation, summary, ratio), printed
//! as a table and written as JSON next to the machine and command they
//! were measured with.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::router::Implementation;
use super::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub implementation: Implementation,
    pub unit: &'static str,
    pub lower_is_better: bool,
    pub samples: Vec<f64>,
    pub summary: Option<Summary>,
    /// On the vrrp-agent row: its median over keepalived's median.
    pub ratio_agent_over_keepalived: Option<f64>,
    /// Runs that produced no sample (their errors are in the report).
    pub failed_runs: usize,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        implementation: Implementation,
        unit: &'static str,
        lower_is_better: bool,
        samples: Vec<f64>,
        failed_runs: usize,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            implementation,
            unit,
            lower_is_better,
            summary: Summary::of(&samples),
            samples,
            ratio_agent_over_keepalived: None,
            failed_runs,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub command: String,
    pub elapsed_s: f64,
    pub seconds_per_scenario: Vec<(String, f64)>,
    pub rows: Vec<Row>,
    /// Secondary measurements (not in the printed table).
    pub details: Vec<Row>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Sets the ratio on every agent row whose scenario has a keepalived row
/// with a non-zero median.
pub fn fill_ratios(rows: &mut [Row]) {
    let baselines: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.implementation == Implementation::Keepalived)
        .filter_map(|r| Some((r.scenario.clone(), r.summary?.median)))
        .collect();
    for row in rows
        .iter_mut()
        .filter(|r| r.implementation == Implementation::Agent)
    {
        let baseline = baselines
            .iter()
            .find(|(scenario, _)| *scenario == row.scenario)
            .map(|(_, median)| *median);
        row.ratio_agent_over_keepalived = match (row.summary, baseline) {
            (Some(summary), Some(base)) if base != 0.0 => Some(summary.median / base),
            _ => None,
        };
    }
}

fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The table printed on stdout.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "scenario", "impl", "unit", "n", "median", "p95", "max", "agent/ka",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            let (n, median, p95, max) = match row.summary {
                Some(s) => (
                    s.n.to_string(),
                    number(s.median),
                    number(s.p95),
                    number(s.max),
                ),
                None => ("0".into(), "-".into(), "-".into(), "-".into()),
            };
            let n = if row.failed_runs > 0 {
                format!("{n} ({} failed)", row.failed_runs)
            } else {
                n
            };
            let ratio = row
                .ratio_agent_over_keepalived
                .map(|r| format!("{r:.3}"))
                .unwrap_or_default();
            let unit = format!(
                "{} {}",
                row.unit,
                if row.lower_is_better {
                    "(lower better)"
                } else {
                    "(higher better)"
                }
            );
            [
                row.scenario.clone(),
                row.implementation.label().to_owned(),
                unit,
                n,
                median,
                p95,
                max,
                ratio,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 3 {
                let _ = write!(text, "{cell:<width$}  ");
            } else {
                let _ = write!(text, "{cell:>width$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &cells {
        line(row);
    }
    out
}

/// Writes `bench-<stamp>.json` and `latest.json` into `dir`.
pub fn write(report: &Report, dir: &Path, stamp: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    let path = dir.join(format!("bench-{stamp}.json"));
    std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    let latest = dir.join("latest.json");
    std::fs::write(&latest, &json).with_context(|| format!("cannot write {}", latest.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row::new(
                "gap",
                Implementation::Keepalived,
                "ms",
                true,
                vec![100.0, 200.0],
                0,
            ),
            Row::new(
                "gap",
                Implementation::Agent,
                "ms",
                true,
                vec![30.0, 30.0, 30.0],
                1,
            ),
            Row::new(
                "flaps",
                Implementation::Keepalived,
                "count",
                true,
                vec![0.0],
                0,
            ),
            Row::new("flaps", Implementation::Agent, "count", true, vec![0.0], 0),
        ]
    }

    #[test]
    fn ratio_is_agent_median_over_keepalived_median() {
        let mut rows = rows();
        fill_ratios(&mut rows);
        assert_eq!(rows[1].ratio_agent_over_keepalived, Some(0.2));
        assert_eq!(rows[0].ratio_agent_over_keepalived, None);
        // 0 over 0 has no meaningful ratio.
        assert_eq!(rows[3].ratio_agent_over_keepalived, None);
    }

    #[test]
    fn table_has_a_line_per_row_and_shows_failures() {
        let mut rows = rows();
        fill_ratios(&mut rows);
        let text = table(&rows);
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("3 (1 failed)"), "{text}");
        assert!(text.contains("0.200"), "{text}");
        assert!(text.lines().next().unwrap().starts_with("scenario"));
    }

    #[test]
    fn numbers_keep_three_significant_figures_or_so() {
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
    }
}
