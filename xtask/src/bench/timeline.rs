//! Draws failover runs as a PNG: per implementation, the client's probes
//! (answered or not) and both routers' states over time around the fault.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::failover::{StateSample, Timeline};

/// DejaVu Sans (Debian `fonts-dejavu-core`): read at run time so building
/// needs no font or fontconfig development packages.
const FONT_CANDIDATES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

const ROW_PROBES: f64 = 2.0;
const ROW_OLD_MASTER: f64 = 1.0;
const ROW_BACKUP: f64 = 0.0;
/// Room above the probe row for the legend.
const Y_TOP: f64 = 4.1;

fn register_font() -> Result<()> {
    let path = FONT_CANDIDATES
        .iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            anyhow!(
                "no font for the timeline plot at {}; install the Debian package fonts-dejavu-core",
                FONT_CANDIDATES.join(" or ")
            )
        })?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read font {path}"))?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable TrueType font"))
}

fn state_color(state: &str) -> RGBColor {
    match state {
        "MASTER" => RGBColor(30, 100, 220),
        "BACKUP" => RGBColor(150, 150, 150),
        "FAULT" => RGBColor(240, 150, 0),
        "DOWN" => RGBColor(0, 0, 0),
        _ => RGBColor(200, 200, 120),
    }
}

/// `[start, end)` segments of each state, relative to the fault.
fn segments(samples: &[StateSample], fault_at: f64, end: f64) -> Vec<(f64, f64, String)> {
    samples
        .iter()
        .enumerate()
        .map(|(i, sample)| {
            let until = samples.get(i + 1).map_or(end, |next| next.at_ms);
            (
                sample.at_ms - fault_at,
                until - fault_at,
                sample.state.clone(),
            )
        })
        .collect()
}

/// The x range shown, in ms from the fault: a little before it, and until
/// well after the client's last unanswered probe, within the recorded run.
fn window(timeline: &Timeline) -> (f64, f64) {
    let fault_at = timeline.fault_at_ms;
    let start = timeline.probes.first().map_or(fault_at, |p| p.0) - fault_at;
    let end = timeline.probes.last().map_or(fault_at, |p| p.0) - fault_at;
    let last_lost = timeline
        .probes
        .iter()
        .filter(|(at, answered)| !answered && *at >= fault_at)
        .map(|(at, _)| at - fault_at)
        .fold(0.0, f64::max);
    let before = (last_lost * 0.5).max(100.0);
    let after = last_lost + (last_lost * 0.5).max(150.0);
    (
        start.max(-before),
        end.min(after).max(start.max(-before) + 1.0),
    )
}

/// Writes the timelines (one panel each) to `path`.
pub fn draw(timelines: &[Timeline], path: &Path) -> Result<()> {
    if timelines.is_empty() {
        bail!("no failover run recorded a timeline");
    }
    register_font()?;
    let panel_height = 420u32;
    let height = panel_height * u32::try_from(timelines.len()).unwrap_or(1);
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let panels = root.split_evenly((timelines.len(), 1));
    for (panel, timeline) in panels.iter().zip(timelines) {
        draw_panel(panel, timeline)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the timeline failed: {err}")
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    timeline: &Timeline,
) -> Result<()> {
    let fault_at = timeline.fault_at_ms;
    let end = timeline.probes.last().map_or(fault_at, |p| p.0);
    let (x0, x1) = window(timeline);
    let caption = format!(
        "{}: {}, {} (probe every 1 ms; time 0 = fault)",
        timeline.implementation.label(),
        timeline.fault.label(),
        timeline.advert.label()
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d(x0..x1, -0.6f64..Y_TOP)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("ms since fault")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(6)
        .y_label_formatter(&|y| {
            let row = y.round();
            if (row - ROW_PROBES).abs() < 0.01 {
                "client probes".into()
            } else if (row - ROW_OLD_MASTER).abs() < 0.01 {
                "r1 (old master)".into()
            } else if (row - ROW_BACKUP).abs() < 0.01 {
                "r2 (backup)".into()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 16))
        .disable_y_mesh()
        .draw()
        .map_err(plot_error)?;

    let shown = |t: f64| (x0..=x1).contains(&(t - fault_at));
    let (answered, lost): (Vec<_>, Vec<_>) = timeline
        .probes
        .iter()
        .filter(|p| shown(p.0))
        .partition(|p| p.1);
    for (points, color, label) in [
        (answered, RGBColor(0, 160, 60), "answered"),
        (lost, RGBColor(220, 30, 30), "no answer"),
    ] {
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(t, _)| Circle::new((t - fault_at, ROW_PROBES), 2, color.filled())),
            )
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }

    for (row, samples) in [ROW_OLD_MASTER, ROW_BACKUP]
        .into_iter()
        .zip(&timeline.states)
    {
        for (from, to, state) in segments(samples, fault_at, end) {
            let color = state_color(&state);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(from.max(x0), row - 0.25), (to.min(x1), row + 0.25)],
                    color.filled(),
                )))
                .map_err(plot_error)?;
        }
    }
    for state in ["MASTER", "BACKUP", "FAULT", "DOWN"] {
        let color = state_color(state);
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(plot_error)?
            .label(state)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, -0.6), (0.0, Y_TOP)],
            RGBColor(220, 30, 30).stroke_width(2),
        ))
        .map_err(plot_error)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_run_until_the_next_sample_or_the_end() {
        let samples = vec![
            StateSample {
                at_ms: 100.0,
                state: "MASTER".into(),
            },
            StateSample {
                at_ms: 600.0,
                state: "DOWN".into(),
            },
        ];
        let segs = segments(&samples, 500.0, 900.0);
        assert_eq!(
            segs,
            vec![
                (-400.0, 100.0, "MASTER".to_owned()),
                (100.0, 400.0, "DOWN".to_owned())
            ]
        );
    }
}
