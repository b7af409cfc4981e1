//! The plots of the evaluation and of `tqkv-llm`, drawn with `plotters` into
//! SVG: panels side by side, log-scale y, one line per series with its
//! confidence whiskers.
//!
//! Schemes can coincide (KV and KQV share their key error wherever the
//! rotation changes nothing), so each series has its own dash and marker
//! as well as its colour: the first a solid line with large hollow circles,
//! the next ones dashed or dotted with smaller filled markers drawn over it.

use plotters::prelude::*;
use plotters::series::DashedLineSeries;
pub use plotters::style::RGBColor;

/// What drawing can fail with (plotters' errors, boxed).
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One point: x, the estimate and its interval.
pub struct Point {
    /// Position on the x axis.
    pub x: f64,
    /// The estimate (drawn if positive: the y axis is logarithmic).
    pub y: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

/// One line of a panel.
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
    /// Its points, in x order.
    pub points: Vec<Point>,
}

/// One chart.
pub struct Panel {
    /// Caption.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// The size of one panel in the evaluation's plots.
pub const PANEL: (u32, u32) = (420, 320);

/// The SVG document of `panels` side by side under `title`, each
/// [`PANEL`] in size.
///
/// ```
/// use tqkv_eval::plot::{render, Panel, Point, RGBColor, Series};
///
/// let line = Series {
///     name: "a".into(),
///     color: RGBColor(200, 0, 0),
///     points: (1..4).map(|i| Point { x: i as f64, y: 0.1 / i as f64, lo: 0.05 / i as f64, hi: 0.2 / i as f64 }).collect(),
/// };
/// let panel = Panel { title: "t".into(), x_label: "bits".into(), y_label: "KL".into(), series: vec![line] };
/// let svg = render("demo", &[panel]).unwrap();
/// assert!(svg.starts_with("<svg"));
/// ```
pub fn render(title: &str, panels: &[Panel]) -> Res<String> {
    render_sized(title, panels, PANEL)
}

/// [`render`] with panels of `panel` pixels (width, height).
pub fn render_sized(title: &str, panels: &[Panel], panel: (u32, u32)) -> Res<String> {
    let mut svg = String::new();
    {
        let size = (panel.0 * panels.len().max(1) as u32, panel.1);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 15))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The decades that hold every positive, finite value of the panel.
fn y_range(panel: &Panel) -> Option<(f64, f64)> {
    let values = panel
        .series
        .iter()
        .flat_map(|s| &s.points)
        .flat_map(|p| [p.y, p.lo, p.hi])
        .filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    (lo <= hi).then(|| {
        let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
        (10f64.powf(lo), 10f64.powf(hi.max(lo + 1.0)))
    })
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let xs = panel.series.iter().flat_map(|s| &s.points).map(|p| p.x);
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (Some((y0, y1)), true) = (y_range(panel), x0 <= x1) else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((x0 - 0.25)..(x1 + 0.25), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(((x1 - x0) as usize) + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .light_line_style(WHITE)
        .draw()?;
    for (k, s) in panel.series.iter().enumerate() {
        let line = s.color.stroke_width(2);
        let points: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, p.y)).collect();
        let whiskers = s.points.iter().map(|p| {
            ErrorBar::new_vertical(
                p.x,
                p.lo.max(y0),
                p.y,
                p.hi.min(y1),
                s.color.stroke_width(1),
                6,
            )
        });
        chart.draw_series(whiskers)?;
        let color = s.color;
        match k % 3 {
            0 => {
                chart
                    .draw_series(LineSeries::new(points.clone(), line))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart.draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 6, color.stroke_width(2))),
                )?;
            }
            1 => {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 7, 4, line))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x + 5, y - 3), (x + 11, y + 3)], color.filled())
                    });
                chart.draw_series(points.iter().map(|&p| {
                    EmptyElement::at(p) + Rectangle::new([(-3, -3), (3, 3)], color.filled())
                }))?;
            }
            _ => {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 2, 3, line))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 4, color.filled()));
                chart.draw_series(
                    points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 4, color.filled())),
                )?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
