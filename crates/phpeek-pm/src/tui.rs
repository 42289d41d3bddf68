//! `phpeek-pm tui`: a live dashboard of a running manager.
//!
//! Refreshes once a second from `GET /api/v1/processes?resources=true` and
//! `?view=processes`. A selected process with an autoscaler gets a panel:
//! its state and bounds, and sparklines of its largest metric and its
//! instance count over the last five minutes.
//! Keys: ↑/↓ (or k/j) select a process, `+`/`-` scale it by one, `r`
//! restart it (rolling), `s` stop it, `S` start it, `q`/Esc quit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use phpeek_wire::{ActionResponse, InstanceInfo, InstanceState, ProcessInfo, ScaleResponse};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::client::{Client, Failure};

/// One process as shown in the upper table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcRow {
    pub name: String,
    pub desired: u64,
    pub running: u64,
    pub restarts: u64,
    pub cpu: f64,
    pub memory: u64,
    /// A schedule's next and last run, or a one-shot's state.
    pub note: String,
    pub instances: Vec<InstanceInfo>,
}

/// What the dashboard shows; built from the API's instance array.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub processes: Vec<ProcRow>,
    pub selected: usize,
    pub status: String,
    /// Per autoscaled process, its recent history (one point per refresh).
    pub trends: BTreeMap<String, Trend>,
}

/// Points kept per process: five minutes at one refresh a second.
pub const TREND_POINTS: usize = 300;

/// What the autoscale panel draws for one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trend {
    /// The largest metric value of each decision.
    pub metric: std::collections::VecDeque<u64>,
    /// The desired count at each refresh.
    pub instances: std::collections::VecDeque<u64>,
    /// A one-line summary (state, bounds, last values).
    pub summary: String,
}

impl Trend {
    /// Adds one refresh's view of `p`'s autoscaler.
    pub fn push(&mut self, p: &ProcessInfo) {
        let Some(a) = &p.autoscale else { return };
        let value = a
            .last
            .as_ref()
            .map(|l| {
                l.metrics
                    .iter()
                    .filter_map(|m| m.value)
                    .fold(0.0_f64, f64::max)
            })
            .unwrap_or(0.0);
        // Sparklines draw whole numbers; negative or NaN values are 0.
        let v = if value.is_finite() && value > 0.0 {
            value.round() as u64
        } else {
            0
        };
        for (q, x) in [
            (&mut self.metric, v),
            (&mut self.instances, u64::from(p.desired)),
        ] {
            if q.len() == TREND_POINTS {
                q.pop_front();
            }
            q.push_back(x);
        }
        let metrics = a
            .last
            .as_ref()
            .map(|l| {
                l.metrics
                    .iter()
                    .map(|m| match m.value {
                        Some(v) => format!("{} {v}", m.name),
                        None => format!("{} error", m.name),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        self.summary = format!(
            "{}  {}..{}  recommended {}  desired {}  running {}  {}",
            a.state,
            a.min,
            a.max,
            a.recommended.map_or("-".into(), |r| r.to_string()),
            p.desired,
            p.current,
            metrics
        );
    }
}

impl Model {
    /// Rebuilds the rows; processes seen before but now without instances
    /// (scaled to 0) stay listed so they can be scaled up again.
    pub fn update(&mut self, instances: &[InstanceInfo], desired: &BTreeMap<String, u64>) {
        let mut by: BTreeMap<String, ProcRow> = self
            .processes
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    ProcRow {
                        name: p.name.clone(),
                        ..ProcRow::default()
                    },
                )
            })
            .collect();
        for i in instances {
            let row = by.entry(i.process.clone()).or_insert_with(|| ProcRow {
                name: i.process.clone(),
                ..ProcRow::default()
            });
            if i.state == InstanceState::Running {
                row.running += 1;
            }
            row.restarts += i.restarts;
            row.cpu += i.cpu_seconds.unwrap_or(0.0);
            row.memory += i.memory_bytes.unwrap_or(0);
            row.instances.push(i.clone());
        }
        for name in desired.keys() {
            by.entry(name.clone()).or_insert_with(|| ProcRow {
                name: name.clone(),
                ..ProcRow::default()
            });
        }
        for (name, row) in by.iter_mut() {
            row.desired = desired
                .get(name)
                .copied()
                .unwrap_or(row.instances.len() as u64);
        }
        self.processes = by.into_values().collect();
        if self.selected >= self.processes.len() {
            self.selected = self.processes.len().saturating_sub(1);
        }
    }

    pub fn selected_process(&self) -> Option<&ProcRow> {
        self.processes.get(self.selected)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn state_style(state: InstanceState) -> Style {
    match state {
        InstanceState::Running => Style::default().fg(Color::Green),
        InstanceState::Backoff | InstanceState::Starting | InstanceState::Stopping => {
            Style::default().fg(Color::Yellow)
        }
        InstanceState::Failed => Style::default().fg(Color::Red),
        InstanceState::Completed => Style::default().fg(Color::Cyan),
        InstanceState::Stopped | InstanceState::Exited => Style::default().fg(Color::DarkGray),
    }
}

/// Draws the whole dashboard.
pub fn render(frame: &mut Frame, model: &Model) {
    let trend = model
        .selected_process()
        .and_then(|p| model.trends.get(&p.name).map(|t| (p.name.clone(), t)));
    let [top, bottom, panel, help] = Layout::vertical([
        Constraint::Percentage(40),
        Constraint::Min(3),
        Constraint::Length(if trend.is_some() { 7 } else { 0 }),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    if let Some((name, t)) = trend {
        render_trend(frame, panel, &name, t);
    }

    let header = Row::new([
        "PROCESS", "DESIRED", "RUNNING", "RESTARTS", "CPU s", "MEMORY", "RUNS",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = model.processes.iter().map(|p| {
        Row::new(vec![
            Cell::from(p.name.clone()),
            Cell::from(p.desired.to_string()),
            Cell::from(p.running.to_string()),
            Cell::from(p.restarts.to_string()),
            Cell::from(format!("{:.1}", p.cpu)),
            Cell::from(mib(p.memory)),
            Cell::from(p.note.clone()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Min(24),
        ],
    )
    .header(header)
    .block(Block::bordered().title(" processes "))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(model.selected));
    frame.render_stateful_widget(table, top, &mut state);

    let (title, inst_rows): (String, Vec<Row>) = match model.selected_process() {
        Some(p) => (
            format!(" instances of {} ", p.name),
            p.instances
                .iter()
                .map(|i| {
                    Row::new(vec![
                        Cell::from(i.name.clone()),
                        Cell::from(i.state.as_str()).style(state_style(i.state)),
                        Cell::from(i.pid.map_or_else(|| "-".to_string(), |p| p.to_string())),
                        Cell::from(format!("{}s", i.uptime)),
                        Cell::from(i.restarts.to_string()),
                        Cell::from(i.health.as_str()),
                        Cell::from(format!("{:.1}", i.cpu_seconds.unwrap_or(0.0))),
                        Cell::from(mib(i.memory_bytes.unwrap_or(0))),
                    ])
                })
                .collect(),
        ),
        None => (" instances ".to_string(), Vec::new()),
    };
    let inst_header = Row::new([
        "INSTANCE", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "CPU s", "MEMORY",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let inst_table = Table::new(
        inst_rows,
        [
            Constraint::Min(20),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(11),
        ],
    )
    .header(inst_header)
    .block(Block::bordered().title(title));
    frame.render_widget(inst_table, bottom);

    let help_text = format!(
        "↑/↓ select  +/- scale  r restart  s stop  S start  q quit   {}",
        model.status
    );
    frame.render_widget(Paragraph::new(Line::from(help_text)), help);
}

/// The autoscale panel: the metric and the instance count over the last
/// minutes, as sparklines, under a summary line.
fn render_trend(frame: &mut Frame, area: ratatui::layout::Rect, name: &str, t: &Trend) {
    let block = Block::bordered().title(format!(" autoscale of {name}: {} ", t.summary));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [metric, count] =
        Layout::vertical([Constraint::Length(2), Constraint::Length(3)]).areas(inner);
    let metric_data: Vec<u64> = t.metric.iter().copied().collect();
    let count_data: Vec<u64> = t.instances.iter().copied().collect();
    frame.render_widget(
        ratatui::widgets::Sparkline::default()
            .data(&metric_data)
            .style(Style::default().fg(Color::Yellow)),
        metric,
    );
    frame.render_widget(
        ratatui::widgets::Sparkline::default()
            .data(&count_data)
            .style(Style::default().fg(Color::Green)),
        count,
    );
}

async fn refresh(client: &Client, model: &mut Model) -> Result<(), Failure> {
    let instances: Vec<InstanceInfo> = client.get("/processes?resources=true").await?;
    let mut names: Vec<String> = model.processes.iter().map(|p| p.name.clone()).collect();
    for i in &instances {
        if !names.contains(&i.process) {
            names.push(i.process.clone());
        }
    }
    let mut desired = BTreeMap::new();
    let mut notes = BTreeMap::new();
    match client
        .get::<Vec<ProcessInfo>>("/processes?view=processes")
        .await
    {
        Ok(list) => {
            for p in &list {
                if p.autoscale.is_some() {
                    model.trends.entry(p.name.clone()).or_default().push(p);
                }
                desired.insert(p.name.clone(), u64::from(p.desired));
                notes.insert(p.name.clone(), runs_note(p, std::time::SystemTime::now()));
            }
        }
        Err(_) => {
            for n in names {
                if let Ok(p) = client.get::<ProcessInfo>(&format!("/processes/{n}")).await {
                    desired.insert(n, u64::from(p.desired));
                }
            }
        }
    }
    model.update(&instances, &desired);
    for row in &mut model.processes {
        row.note = notes.remove(&row.name).unwrap_or_default();
    }
    Ok(())
}

/// The RUNS column: a schedule's next run and last result, a one-shot's
/// state.
pub fn runs_note(p: &ProcessInfo, now: std::time::SystemTime) -> String {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    if let Some(s) = &p.schedule {
        let next = match (s.suspended, s.next_run) {
            (true, _) => "suspended".to_string(),
            (false, Some(t)) => format!("next in {}s", (t - now).max(0)),
            (false, None) => "no next run".to_string(),
        };
        let last = match s.last_run.as_ref() {
            None => String::new(),
            Some(r) if r.ended_at.is_none() => " · running".to_string(),
            Some(r) => match r.exit_code {
                Some(0) => " · last ok".to_string(),
                Some(c) => format!(" · last exit {c}"),
                None => " · last failed".to_string(),
            },
        };
        return format!("{next}{last}");
    }
    if p.kind == "oneshot" {
        return format!("one-shot {:?}", p.state).to_lowercase();
    }
    String::new()
}

async fn act(client: &Client, model: &mut Model, key: KeyCode) {
    let Some(p) = model.selected_process().cloned() else {
        return;
    };
    let result = match key {
        KeyCode::Char('+') => client
            .post(
                &format!("/processes/{}/scale", p.name),
                Some(format!("{{\"desired\": {}}}", p.desired + 1)),
            )
            .await
            .map(|_: ScaleResponse| format!("scaling {} to {}", p.name, p.desired + 1)),
        KeyCode::Char('-') if p.desired > 0 => client
            .post(
                &format!("/processes/{}/scale", p.name),
                Some(format!("{{\"desired\": {}}}", p.desired - 1)),
            )
            .await
            .map(|_: ScaleResponse| format!("scaling {} to {}", p.name, p.desired - 1)),
        KeyCode::Char('r') => client
            .post(&format!("/processes/{}/restart", p.name), None)
            .await
            .map(|_: ActionResponse| format!("restarting {}", p.name)),
        KeyCode::Char('s') => client
            .post(&format!("/processes/{}/stop", p.name), None)
            .await
            .map(|_: ActionResponse| format!("stopping {}", p.name)),
        KeyCode::Char('S') => client
            .post(&format!("/processes/{}/start", p.name), None)
            .await
            .map(|_: ActionResponse| format!("starting {}", p.name)),
        _ => return,
    };
    model.status = match result {
        Ok(m) => m,
        Err(f) => f.message,
    };
}

/// Runs the dashboard until the user quits.
pub async fn run(client: &Client) -> Result<(), Failure> {
    let mut model = Model::default();
    refresh(client, &mut model).await?;
    let mut terminal = ratatui::init();
    let mut last = Instant::now();
    let result = loop {
        if let Err(e) = terminal.draw(|f| render(f, &model)) {
            break Err(Failure {
                code: 1,
                message: format!("cannot draw: {e}"),
            });
        }
        let ready = event::poll(Duration::from_millis(200)).unwrap_or(false);
        if ready {
            if let Ok(Event::Key(k)) = event::read() {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => break Ok(()),
                    KeyCode::Up | KeyCode::Char('k') => {
                        model.selected = model.selected.saturating_sub(1)
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        if model.selected + 1 < model.processes.len() {
                            model.selected += 1;
                        }
                    }
                    other => {
                        act(client, &mut model, other).await;
                        last = Instant::now() - Duration::from_secs(1);
                    }
                }
            }
        }
        if last.elapsed() >= Duration::from_secs(1) {
            if let Err(f) = refresh(client, &mut model).await {
                model.status = f.message;
            }
            last = Instant::now();
        }
    };
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use serde_json::json;

    fn sample() -> Model {
        let mut m = Model::default();
        let instances: Vec<InstanceInfo> = serde_json::from_value(json!([
            {"name":"queue-default-1","process":"queue-default","number":1,"state":"running","pid":10,"uptime":5,"started_at":1,"restarts":1,"last_exit_code":null,"health":"unknown","cpu_seconds":1.5,"memory_bytes":2097152},
            {"name":"queue-default-2","process":"queue-default","number":2,"state":"backoff","pid":null,"uptime":0,"started_at":1,"restarts":3,"last_exit_code":1,"health":"unknown"},
            {"name":"web-1","process":"web","number":1,"state":"running","pid":12,"uptime":9,"started_at":1,"restarts":0,"last_exit_code":null,"health":"healthy"},
        ]))
        .unwrap();
        let desired = BTreeMap::from([("queue-default".to_string(), 2), ("web".to_string(), 1)]);
        m.update(&instances, &desired);
        m
    }

    #[test]
    fn model_groups_instances_by_process() {
        let m = sample();
        assert_eq!(m.processes.len(), 2);
        let q = &m.processes[0];
        assert_eq!((q.desired, q.running, q.restarts), (2, 1, 4));
        assert_eq!(q.memory, 2097152);
    }

    #[test]
    fn a_process_scaled_to_zero_stays_listed() {
        let mut m = sample();
        m.update(&[], &BTreeMap::from([("web".to_string(), 0)]));
        let names: Vec<&str> = m.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["queue-default", "web"]);
    }

    #[test]
    fn renders_processes_and_the_selected_instances() {
        let m = sample();
        let mut term = Terminal::new(TestBackend::new(100, 20)).unwrap();
        term.draw(|f| render(f, &m)).unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains("queue-default"));
        assert!(screen.contains("queue-default-2"));
        assert!(screen.contains("backoff"));
        assert!(screen.contains("2.0 MiB"));
        assert!(screen.contains("q quit"));
    }

    #[test]
    fn an_autoscaled_process_gets_a_trend_panel() {
        use phpeek_wire::{AutoscaleInfo, AutoscaleLast, AutoscaleMetricInfo, ProcessState};
        let mut m = sample();
        let name = m.processes[m.selected].name.clone();
        let mut t = Trend::default();
        for (depth, desired) in [(0.0, 2), (800.0, 6), (1500.0, 10), (300.0, 10)] {
            let p = ProcessInfo {
                name: name.clone(),
                scale: desired,
                desired,
                current: desired,
                state: ProcessState::Running,
                restart: "always".into(),
                enabled: true,
                reason: None,
                rollout: None,
                kind: "longrun".into(),
                schedule: None,
                autoscale: Some(AutoscaleInfo {
                    state: "active".into(),
                    min: 2,
                    max: 10,
                    recommended: Some(desired),
                    desired,
                    last: Some(AutoscaleLast {
                        at: 0,
                        metrics: vec![AutoscaleMetricInfo {
                            name: "redis".into(),
                            value: Some(depth),
                            desired: Some(desired),
                            error: None,
                        }],
                        limited_by: None,
                    }),
                }),
                instances: Vec::new(),
            };
            t.push(&p);
        }
        assert_eq!(t.metric, [0, 800, 1500, 300]);
        assert_eq!(t.instances, [2, 6, 10, 10]);
        m.trends.insert(name.clone(), t);
        let mut term = Terminal::new(TestBackend::new(120, 24)).unwrap();
        term.draw(|f| render(f, &m)).unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains(&format!("autoscale of {name}")), "{screen}");
        assert!(screen.contains("redis 300"), "{screen}");
    }
}
