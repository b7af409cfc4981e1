//! Small hand-written SVG line plots: panels side by side, log-scale y,
//! one line per series with confidence whiskers.

use std::fmt::Write;

/// One point: x, the median and its interval.
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<Point>,
}

pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const W: f64 = 420.0;
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document of `panels` side by side under `title`.
pub fn render(title: &str, panels: &[Panel]) -> String {
    let width = W * panels.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut s, W * i as f64, p);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, x0: f64, p: &Panel) {
    let pts = p.series.iter().flat_map(|se| se.points.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for q in pts {
        xmin = xmin.min(q.x);
        xmax = xmax.max(q.x);
        for v in [q.y, q.lo, q.hi] {
            if v > 0.0 && v.is_finite() {
                ymin = ymin.min(v);
                ymax = ymax.max(v);
            }
        }
    }
    if xmin > xmax || ymin > ymax {
        return;
    }
    if xmax == xmin {
        xmax = xmin + 1.0;
    }
    let (ly0, mut ly1) = (ymin.log10().floor(), ymax.log10().ceil());
    if ly1 <= ly0 {
        ly1 = ly0 + 1.0;
    }
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| x0 + LEFT + (x - xmin) / (xmax - xmin) * pw;
    let sy = |y: f64| TOP + ph - (y.max(10f64.powf(ly0)).log10() - ly0) / (ly1 - ly0) * ph;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="38" text-anchor="middle" font-size="12">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        esc(&p.title)
    );
    // Grid and axes.
    let mut e = ly0;
    while e <= ly1 + 1e-9 {
        let y = sy(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">1e{e}</text>"##,
            x0 + LEFT,
            x0 + LEFT + pw,
            x0 + LEFT - 4.0,
            y + 4.0
        );
        e += 1.0;
    }
    let mut x = xmin;
    while x <= xmax + 1e-9 {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{x}</text>"#,
            sx(x),
            TOP + ph + 15.0
        );
        x += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#,
        x0 + LEFT
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        H - 12.0,
        esc(&p.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 + 16.0,
        TOP + ph / 2.0,
        esc(&p.y_label)
    );
    for (k, se) in p.series.iter().enumerate() {
        let style = STYLES[k % STYLES.len()];
        let path: Vec<String> = se
            .points
            .iter()
            .map(|q| format!("{:.1},{:.1}", sx(q.x), sy(q.y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>"#,
            path.join(" "),
            se.color,
            style.dash
        );
        for q in &se.points {
            let (cx, cy) = (sx(q.x), sy(q.y));
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{}"/>{}"#,
                sy(q.lo),
                sy(q.hi),
                se.color,
                marker(style.marker, cx, cy, se.color)
            );
        }
        let ly = TOP + 12.0 + 14.0 * k as f64;
        let lx = x0 + LEFT + pw - 70.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>{}<text x="{}" y="{ly}">{}</text>"#,
            ly - 4.0,
            lx + 16.0,
            ly - 4.0,
            se.color,
            style.dash,
            marker(style.marker, lx + 8.0, ly - 4.0, se.color),
            lx + 20.0,
            esc(&se.name)
        );
    }
}

/// How a series is drawn. Series that coincide (KV and KQV share their key
/// quantiser's error where both rotate nothing away) must stay visible: the
/// first is a solid line with large hollow circles, the next ones dashed
/// or dotted with smaller filled markers drawn over it.
#[derive(Clone, Copy)]
struct Style {
    dash: &'static str,
    marker: Marker,
}

#[derive(Clone, Copy)]
enum Marker {
    HollowCircle,
    Square,
    Triangle,
}

const STYLES: [Style; 3] = [
    Style {
        dash: "none",
        marker: Marker::HollowCircle,
    },
    Style {
        dash: "7,4",
        marker: Marker::Square,
    },
    Style {
        dash: "2,3",
        marker: Marker::Triangle,
    },
];

fn marker(m: Marker, cx: f64, cy: f64, color: &str) -> String {
    match m {
        Marker::HollowCircle => format!(
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="5.5" fill="white" fill-opacity="0" stroke="{color}" stroke-width="1.5"/>"#
        ),
        Marker::Square => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="6" height="6" fill="{color}"/>"#,
            cx - 3.0,
            cy - 3.0
        ),
        Marker::Triangle => format!(
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
            cx,
            cy - 3.5,
            cx - 3.5,
            cy + 3.0,
            cx + 3.5,
            cy + 3.0
        ),
    }
}
