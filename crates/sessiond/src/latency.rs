//! Latency histograms with fixed buckets, counted in atomics (one add per
//! bucket, count and sum) and rendered in the Prometheus text format next to
//! the exporter's metrics. The exporter keeps every sample of its own
//! histograms until they are drained, which cost more per request than all
//! the other metrics together; the buckets here are the ones it was given.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (then `+Inf`).
pub const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One series: observations per bucket (not cumulative), and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Count one observation of `latency`.
    pub fn record(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let index = BUCKETS.partition_point(|bound| *bound < secs);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// A named histogram and its series by label values.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    series: Mutex<Vec<(Vec<String>, Arc<Histogram>)>>,
}

impl Family {
    /// An empty family.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            label_names,
            series: Mutex::new(Vec::new()),
        }
    }

    /// The series with these label values (in the order of the names),
    /// registered on first use. Callers keep the handle: this takes a lock.
    pub fn series(&self, values: &[&str]) -> Arc<Histogram> {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, h)) = series
            .iter()
            .find(|(v, _)| v.iter().map(String::as_str).eq(values.iter().copied()))
        {
            return h.clone();
        }
        let h = Arc::new(Histogram::default());
        series.push((values.iter().map(|v| (*v).to_owned()).collect(), h.clone()));
        h
    }

    /// Append the family in the Prometheus text format (nothing before its
    /// first observation).
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (values, histogram) in series.iter() {
            let labels = self
                .label_names
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect::<Vec<_>>()
                .join(",");
            histogram.render(self.name, &labels, out);
        }
        out.push('\n');
    }
}

/// A label value as the text format wants it.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_sum_and_count() {
        let family = Family::new("t_seconds", "test latency", &["route", "method"]);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(out, "", "nothing before the first observation");
        let h = family.series(&["/a/{id}", "GET"]);
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(9));
        family
            .series(&["/a/{id}", "GET"])
            .record(Duration::from_millis(1));
        family.series(&["we\"ird\\", "POST"]);
        family.render(&mut out);
        assert!(
            out.starts_with("# HELP t_seconds test latency\n# TYPE t_seconds histogram\n"),
            "{out}"
        );
        for line in [
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="0.0005"} 1"#,
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="0.001"} 2"#,
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="0.0025"} 2"#,
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="0.005"} 3"#,
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="5"} 3"#,
            r#"t_seconds_bucket{route="/a/{id}",method="GET",le="+Inf"} 4"#,
            r#"t_seconds_sum{route="/a/{id}",method="GET"} 9.0043"#,
            r#"t_seconds_count{route="/a/{id}",method="GET"} 4"#,
            r#"t_seconds_count{route="we\"ird\\",method="POST"} 0"#,
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line} missing from:\n{out}"
            );
        }
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        let family = Family::new("b", "h", &[]);
        family.series(&[]).record(Duration::from_millis(1));
        let mut out = String::new();
        family.render(&mut out);
        assert!(out.contains("b_bucket{le=\"0.0005\"} 0\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("b_count 1\n"), "{out}");
    }
}
