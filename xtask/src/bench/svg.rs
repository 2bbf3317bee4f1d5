//! The benchmark's two charts, as plain SVG: boot phases stacked per configuration, and VM
//! launches per second against how many VMs start.
use std::fmt::Write as _;

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One horizontal bar: a label and its segments as (phase name, ms spent in it).
pub struct Bar {
    pub label: String,
    pub segments: Vec<(String, f64)>,
}

/// Horizontal stacked bars, one per configuration; each phase keeps its color across bars.
pub fn stacked_phases(title: &str, bars: &[Bar]) -> String {
    let (left, top, bar_h, gap, width) = (300.0, 50.0, 22.0, 10.0, 560.0);
    let max = bars
        .iter()
        .map(|b| b.segments.iter().map(|(_, v)| v).sum::<f64>())
        .fold(1e-9, f64::max);
    let mut phases: Vec<String> = Vec::new();
    for b in bars {
        for (p, _) in &b.segments {
            if !phases.contains(p) {
                phases.push(p.clone());
            }
        }
    }
    let legend_h = 20.0 * phases.len() as f64;
    let height = top + bars.len() as f64 * (bar_h + gap) + 40.0 + legend_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
        w = left + width + 80.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="24" font-size="15">{}</text>"#,
        escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + bar_h * 0.7,
            escape(&b.label)
        );
        let mut x = left;
        for (p, v) in &b.segments {
            let w = v / max * width;
            let color = COLORS[phases.iter().position(|q| q == p).unwrap_or(0) % COLORS.len()];
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bar_h}" fill="{color}"><title>{}: {v:.1} ms</title></rect>"#,
                escape(p)
            );
            x += w;
        }
        let total: f64 = b.segments.iter().map(|(_, v)| v).sum();
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}">{total:.1} ms</text>"#,
            x + 5.0,
            y + bar_h * 0.7
        );
    }
    let ly = top + bars.len() as f64 * (bar_h + gap) + 20.0;
    for (i, p) in phases.iter().enumerate() {
        let y = ly + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{y}" width="14" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            COLORS[i % COLORS.len()],
            left + 20.0,
            y + 11.0,
            escape(p)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Grouped vertical bars: one group per x value, one bar per series.
pub fn grouped_bars(title: &str, y_label: &str, xs: &[String], series: &[(String, Vec<f64>)]) -> String {
    let (left, top, plot_h, group_w) = (70.0, 50.0, 300.0, 40.0 + 22.0 * series.len() as f64);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let width = left + group_w * xs.len() as f64 + 260.0;
    let height = top + plot_h + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="24" font-size="15">{}</text>"#,
        escape(title)
    );
    let base = top + plot_h;
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="black"/><line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
        left + group_w * xs.len() as f64
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{max:.0}</text>"#,
        left - 4.0,
        top + 4.0
    );
    for (g, x) in xs.iter().enumerate() {
        let gx = left + g as f64 * group_w + 20.0;
        for (i, (name, values)) in series.iter().enumerate() {
            // A value a cut-short run never measured (NaN) is no bar.
            let Some(v) = values.get(g).copied().filter(|v| v.is_finite()) else {
                continue;
            };
            let h = v / max * plot_h;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="20" height="{h:.1}" fill="{}"><title>{}: {v:.0}</title></rect>"#,
                gx + 22.0 * i as f64,
                base - h,
                COLORS[i % COLORS.len()],
                escape(name)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + 11.0 * series.len() as f64,
            base + 18.0,
            escape(x)
        );
    }
    let lx = left + group_w * xs.len() as f64 + 20.0;
    for (i, (name, _)) in series.iter().enumerate() {
        let y = top + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{y}" width="14" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            COLORS[i % COLORS.len()],
            lx + 20.0,
            y + 11.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_a_shape_per_value() {
        let bars = [
            Bar {
                label: "a <b>".into(),
                segments: vec![("x".into(), 1.0), ("y".into(), 3.0)],
            },
            Bar {
                label: "c".into(),
                segments: vec![("y".into(), 2.0)],
            },
        ];
        let svg = stacked_phases("t", &bars);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("4.0 ms"));
        let svg = grouped_bars(
            "t",
            "per s",
            &["1".into(), "10".into()],
            &[("m".into(), vec![5.0, 7.0])],
        );
        assert_eq!(svg.matches("<title>").count(), 2);
    }
}
