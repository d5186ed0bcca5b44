//! Results: a `RESULT scenario=... key=value ...` line per run as it happens, and markdown tables
//! collected per scenario and printed as a summary at the end.

use crate::runner::Rate;

#[derive(Default)]
pub(crate) struct Report {
    /// (title, header, rows), in the order scenarios ran.
    tables: Vec<(String, String, Vec<String>)>,
}

impl Report {
    pub(crate) fn row(&mut self, title: &str, header: &str, row: String) {
        if let Some(table) = self.tables.iter_mut().find(|t| t.0 == title) {
            table.2.push(row);
        } else {
            self.tables
                .push((title.to_owned(), header.to_owned(), vec![row]));
        }
    }

    /// One rate run: a RESULT line and a table row.
    pub(crate) fn rate(
        &mut self,
        scenario: &str,
        target: &str,
        workers: usize,
        r: &Rate,
        base: &Rate,
    ) {
        let ratio = r.rate() / base.rate();
        let (cpu_pct, usr_pct, sys_pct, per_op) = match (r.cpu, r.cpu_us_per_op()) {
            (Some((u, s)), Some(per)) => (
                format!("{:.0}", (u + s) * 100.0 / r.secs),
                format!("{:.0}", u * 100.0 / r.secs),
                format!("{:.0}", s * 100.0 / r.secs),
                format!("{per:.1}"),
            ),
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "RESULT scenario={scenario} target={target} workers={workers} ops={} secs={:.2} rate={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} cpu_pct={cpu_pct} usr_pct={usr_pct} sys_pct={sys_pct} cpu_us_per_op={per_op} errors={} vs_direct={ratio:.2}{}",
            r.ops,
            r.secs,
            r.rate(),
            r.pct_ms(0.5),
            r.pct_ms(0.99),
            r.pct_ms(0.999),
            r.errors,
            r.first_error
                .as_ref()
                .map_or_else(String::new, |e| format!(" first_error={e:?}"))
        );
        self.row(
            scenario,
            "| target | workers | ops/s | vs direct | p50 ms | p99 ms | p99.9 ms | gateway CPU % (usr/sys) | gateway CPU µs/op | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            format!(
                "| {target} | {workers} | {:.0} | {ratio:.2}x | {:.3} | {:.3} | {:.3} | {cpu_pct} ({usr_pct}/{sys_pct}) | {per_op} | {} |",
                r.rate(),
                r.pct_ms(0.5),
                r.pct_ms(0.99),
                r.pct_ms(0.999),
                r.errors
            ),
        );
    }

    pub(crate) fn print(&self) {
        println!("\n# summary");
        for (title, header, rows) in &self.tables {
            println!("\n### {title}\n\n{header}");
            for row in rows {
                println!("{row}");
            }
        }
    }
}
