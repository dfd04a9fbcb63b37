//! The suite's plots, as SVG (plotters' SVG backend: no system libraries).

use std::path::Path;

use plotters::prelude::*;

use crate::BoxError;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
];

fn err(e: impl std::fmt::Display) -> BoxError {
    e.to_string().into()
}

/// Echo latency percentiles (log scale) against the offered rate, one line per server
/// and percentile. `series`: (server, [(rate, p50, p99, p99.9, wire p99)]).
pub(crate) fn latency_vs_load(
    series: &[(String, Vec<[f64; 5]>)],
    path: &Path,
) -> Result<(), BoxError> {
    if series.is_empty() {
        return Ok(());
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p[0]))
        .fold(1.0, f64::max)
        * 1.05;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p[3]))
        .fold(10.0, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Echo latency against offered load (open loop, JSON, 50 connections)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (10.0..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("offered echoes per second")
        .y_desc("latency from intended send, µs (log)")
        .draw()
        .map_err(err)?;
    let mut color = 0;
    for (server, points) in series {
        for (i, name) in ["p50", "p99", "p99.9", "p99 on the wire"]
            .iter()
            .enumerate()
        {
            let c = COLORS[color % COLORS.len()];
            color += 1;
            let data: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[i + 1].max(10.0))).collect();
            chart
                .draw_series(LineSeries::new(data.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{server} {name}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(data.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Memory (MiB) against open connections. `series`: (label, [(connections, MiB)]).
pub(crate) fn memory_vs_connections(
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<(), BoxError> {
    if series.is_empty() {
        return Ok(());
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(1.0, f64::max)
        * 1.05;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Memory against idle connections (ramp)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("open WebSocket connections")
        .y_desc("MiB")
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Saturated broadcast deliveries per second against the receiver count (log scale), one
/// line per configuration. `series`: (label, [(receivers, deliveries/s)]).
pub(crate) fn deliveries_vs_receivers(
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<(), BoxError> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return Ok(());
    }
    let xs = || series.iter().flat_map(|(_, p)| p.iter().map(|p| p.0));
    let x_min = xs().fold(f64::MAX, f64::min).max(1.0) / 1.5;
    let x_max = xs().fold(1.0, f64::max) * 1.5;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1 / 1e3))
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Saturated broadcast through Redis (medians; servers and Redis on one core)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("receivers (log)")
        .y_desc("thousand deliveries per second")
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1 / 1e3)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
