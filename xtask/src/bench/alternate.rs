//! The loop every paired scenario shares: keepalived, then vrrp-agent, run
//! after run, each run's values kept per measure, and the rows they make.

use anyhow::Result;

use super::Results;
use super::interrupt;
use super::report::Row;
use super::router::Implementation;

/// Which table a row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Main,
    Details,
}

/// One value a scenario records per run and implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The row's full name.
    pub name: String,
    pub unit: &'static str,
    pub table: Table,
    pub lower_is_better: bool,
}

impl Measure {
    /// A row of the main table, lower is better.
    pub fn main(name: impl Into<String>, unit: &'static str) -> Self {
        Self {
            name: name.into(),
            unit,
            table: Table::Main,
            lower_is_better: true,
        }
    }

    /// A row of the details table, lower is better.
    pub fn detail(name: impl Into<String>, unit: &'static str) -> Self {
        Self {
            table: Table::Details,
            ..Self::main(name, unit)
        }
    }

    pub fn higher_is_better(self) -> Self {
        Self {
            lower_is_better: false,
            ..self
        }
    }
}

/// What `N` measures collected over the runs, per implementation (in
/// [`Implementation::BOTH`] order).
pub struct Samples<const N: usize> {
    values: [[Vec<f64>; N]; 2],
    failed: [usize; 2],
}

/// Runs `once` for each implementation in turn, `runs` times, and keeps
/// the values `values_of` draws from each outcome (`None`: not measured in
/// that run). `values_of` also gets the run's name, to print its outcome.
/// A failed run is recorded in `results` and counted; Ctrl-C ends the loop.
pub fn run<const N: usize, O>(
    case: &str,
    runs: usize,
    results: &mut Results,
    mut once: impl FnMut(Implementation) -> Result<O>,
    mut values_of: impl FnMut(&str, &O) -> [Option<f64>; N],
) -> Result<Samples<N>> {
    let mut samples = Samples {
        values: std::array::from_fn(|_| std::array::from_fn(|_| Vec::new())),
        failed: [0, 0],
    };
    for run in 0..runs {
        for (k, implementation) in Implementation::BOTH.into_iter().enumerate() {
            interrupt::check()?;
            let what = format!("{case}: run {}/{runs} {}", run + 1, implementation.label());
            match once(implementation) {
                Ok(outcome) => {
                    let values = values_of(&what, &outcome);
                    for (kept, value) in samples.values[k].iter_mut().zip(values) {
                        kept.extend(value);
                    }
                }
                Err(err) => {
                    samples.failed[k] += 1;
                    results.failed(&what, &err)?;
                }
            }
        }
    }
    Ok(samples)
}

impl<const N: usize> Samples<N> {
    /// One row per measure and implementation, the two implementations'
    /// rows of a measure side by side; a `None` measure makes no row.
    pub fn into_rows(self, measures: [Option<Measure>; N], results: &mut Results) {
        let Self {
            values: [keepalived, agent],
            failed,
        } = self;
        for ((measure, keepalived), agent) in measures.into_iter().zip(keepalived).zip(agent) {
            let Some(measure) = measure else { continue };
            for (k, (implementation, samples)) in Implementation::BOTH
                .into_iter()
                .zip([keepalived, agent])
                .enumerate()
            {
                let row = Row::new(
                    measure.name.clone(),
                    implementation,
                    measure.unit,
                    measure.lower_is_better,
                    samples,
                    failed[k],
                );
                match measure.table {
                    Table::Main => results.rows.push(row),
                    Table::Details => results.details.push(row),
                }
            }
        }
    }

    /// The samples of measure `index` for `implementation`, taken out.
    pub fn take(&mut self, implementation: Implementation, index: usize) -> (Vec<f64>, usize) {
        let k = usize::from(implementation == Implementation::Agent);
        (std::mem::take(&mut self.values[k][index]), self.failed[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_alternate_and_rows_keep_each_implementations_values_and_failures() {
        let mut results = Results::default();
        let mut order = Vec::new();
        let mut calls = 0;
        let samples = run(
            "case",
            3,
            &mut results,
            |implementation| {
                calls += 1;
                order.push(implementation);
                // The agent's second run fails.
                if implementation == Implementation::Agent && calls == 4 {
                    anyhow::bail!("lab broke");
                }
                Ok(calls)
            },
            |_, calls| [Some(f64::from(*calls)), (calls % 2 == 1).then_some(1.0)],
        )
        .unwrap();
        assert_eq!(
            order,
            [Implementation::Keepalived, Implementation::Agent].repeat(3)
        );
        samples.into_rows(
            [
                Some(Measure::main("gap", "ms")),
                Some(Measure::detail("odd", "count").higher_is_better()),
            ],
            &mut results,
        );
        let row = |rows: &[Row], implementation| {
            rows.iter()
                .find(|row| row.implementation == implementation)
                .map(|row| (row.samples.clone(), row.failed_runs, row.lower_is_better))
                .unwrap()
        };
        assert_eq!(
            row(&results.rows, Implementation::Keepalived),
            (vec![1.0, 3.0, 5.0], 0, true)
        );
        assert_eq!(
            row(&results.rows, Implementation::Agent),
            (vec![2.0, 6.0], 1, true)
        );
        assert_eq!(
            row(&results.details, Implementation::Keepalived),
            (vec![1.0, 1.0, 1.0], 0, false)
        );
        assert_eq!(
            row(&results.details, Implementation::Agent),
            (vec![], 1, false)
        );
        assert_eq!(results.errors.len(), 1);
        assert!(results.errors[0].contains("case: run 2/3 vrrp-agent"));
    }

    #[test]
    fn a_measure_left_out_makes_no_row_and_take_empties_one() {
        let mut results = Results::default();
        let mut samples = run(
            "case",
            1,
            &mut results,
            |_| Ok(()),
            |_, ()| [Some(1.0), Some(2.0)],
        )
        .unwrap();
        assert_eq!(samples.take(Implementation::Agent, 1), (vec![2.0], 0));
        samples.into_rows([Some(Measure::main("kept", "ms")), None], &mut results);
        assert_eq!(results.rows.len(), 2);
        assert!(results.details.is_empty());
        assert!(results.rows.iter().all(|row| row.scenario == "kept"));
    }
}
