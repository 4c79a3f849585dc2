//! The workflow drawn as an SVG picture, rendered on the server from the definition, with
//! the application's position shown (the applicant's and the reviewer's application pages).
//!
//! The layout is our own small layered (Sugiyama-style) layout, left to right: longest-path
//! layers, dummy nodes on edges that span layers, the route with the most steps kept on one
//! straight row and the other nodes placed on rows above and below it, orthogonal edges with
//! rounded corners. Colours come from `class` attributes only (the site's style sheet); the
//! picture uses presentation attributes and never `style`, which the Content-Security-Policy
//! forbids. A step's state is also shown by border, dashes and a text marker, never by
//! colour alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use serde_json::Value;

use crate::organizations::OrgDirectory;
use crate::workflow::definition::{
    Condition, Definition, FieldType, OrgRef, Step, StepKind, Target,
};
use crate::workflow::engine::planned_route;

/// How a step is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepState {
    /// Finished: its organizations have approved it.
    Done,
    /// The step the application is at now (thick border, "▶ 当前" / "▶ Current").
    Current,
    /// Not reached yet (the default for a step missing from [`DiagramInput::states`]).
    Upcoming,
    /// Passed over: it does not apply to this application (dashed, "已跳过" / "Skipped").
    Skipped,
}

/// What [`render`] draws.
#[derive(Debug, Clone, Copy)]
pub struct DiagramInput<'a> {
    /// The workflow.
    pub definition: &'a Definition,
    /// The organizations, to show names instead of codes.
    pub orgs: &'a OrgDirectory,
    /// `"zh-CN"` or `"en"` (anything starting with `en` is English, as in `Text::get`).
    pub locale: &'a str,
    /// The state of each step by step id; a missing step is [`StepState::Upcoming`], unless
    /// `form` is known and the step is not on the application's planned route, in which
    /// case it is [`StepState::Skipped`].
    pub states: &'a BTreeMap<String, StepState>,
    /// The application's form data, when known: resolves `@form.FIELD` organizations,
    /// conditional participants and the branches taken.
    pub form: Option<&'a Value>,
    /// The organization code of the applicant company's district (`@company.district`),
    /// when known.
    pub company_district: Option<&'a str>,
}

/// Renders the workflow as a complete `<svg>` element (no XML declaration), ready to be
/// embedded in an HTML page. The output depends only on the input.
pub fn render(input: &DiagramInput<'_>) -> String {
    let ctx = Ctx::new(input);
    let layout = Layout::build(&ctx);
    draw(&ctx, &layout)
}

// ---- measurements ------------------------------------------------------------------------

const PAD: f64 = 16.0;
const BOX_PAD_X: f64 = 12.0;
const BOX_PAD_Y: f64 = 9.0;
const BOX_MIN_W: f64 = 150.0;
const BOX_MAX_W_ZH: f64 = 200.0;
const BOX_MAX_W_EN: f64 = 214.0;
const BOX_RADIUS: f64 = 8.0;
const BULLET_INDENT: f64 = 11.0;

const NAME_SIZE: f64 = 14.0;
const NAME_LINE: f64 = 18.0;
const ORG_SIZE: f64 = 12.0;
const ORG_LINE: f64 = 16.0;
const META_SIZE: f64 = 11.0;
const META_LINE: f64 = 15.0;
const MARK_SIZE: f64 = 12.0;
const MARK_LINE: f64 = 17.0;
const LABEL_SIZE: f64 = 11.0;
const LABEL_LINE: f64 = 14.0;
const LABEL_MAX_W: f64 = 118.0;
const TERMINAL_SIZE: f64 = 12.0;

/// Horizontal space between layers (more where an edge label sits in it).
const GAP: f64 = 40.0;
/// Vertical space between rows.
const ROW_GAP: f64 = 22.0;
/// How far from a box an edge that forks (or joins) bends.
const FORK: f64 = 14.0;
const ARROW: f64 = 8.0;
const CORNER: f64 = 6.0;
const START_R: f64 = 7.0;
const END_R: f64 = 10.0;
const END_INNER_R: f64 = 6.5;
/// Height of the terminal nodes' caption under the circle.
const TERMINAL_CAPTION: f64 = 20.0;

const FONT_FAMILY: &str = "system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', 'Noto Sans CJK SC', 'Noto Sans', sans-serif";

/// The approximate advance of a character in em: CJK and other wide characters ≈ 1 em,
/// ASCII ≈ 0.55 em (what a proportional sans-serif averages), other letters a little more.
fn char_em(c: char) -> f64 {
    if c.is_ascii() {
        0.55
    } else if is_wide(c) {
        1.0
    } else {
        0.62
    }
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F
        | 0x2190..=0x21FF // arrows
        | 0x2460..=0x27BF // enclosed numbers, boxes, shapes (▶), dingbats (✓)
        | 0x2E80..=0xA4CF // CJK radicals … Yi, including CJK punctuation and ideographs
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD)
}

/// The approximate width of `text` in ems.
fn text_em(text: &str) -> f64 {
    text.chars().map(char_em).sum()
}

/// Closing punctuation that may hang past the end of a line rather than start the next.
fn is_closing_punct(token: &str) -> bool {
    let mut chars = token.chars();
    matches!(
        (chars.next(), chars.next()),
        (
            Some(
                '\u{FF0C}' // ，
                    | '\u{3002}' // 。
                    | '\u{3001}' // 、
                    | '\u{FF1B}' // ；
                    | '\u{FF1A}' // ：
                    | '\u{FF01}' // ！
                    | '\u{FF1F}' // ？
                    | '\u{FF09}' // ）
                    | '\u{300D}' // 」
                    | '\u{300F}' // 』
                    | '\u{300B}' // 》
                    | '\u{3011}' // 】
                    | ','
                    | '.'
                    | ';'
                    | ':'
                    | ')'
                    | '!'
                    | '?'
            ),
            None
        )
    )
}

/// Splits text into wrap units: single wide characters, words (a hyphen or slash ends a
/// word, so `Data-security` may break after the hyphen) and single spaces.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if out.last().is_some_and(|t| t != " ") {
                out.push(" ".to_string());
            }
        } else if is_wide(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        } else {
            word.push(c);
            if c == '-' || c == '/' {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    while out.last().is_some_and(|t| t == " ") {
        out.pop();
    }
    out
}

/// Wraps `text` to lines at most `max_width` wide (at `size` px), breaking between words
/// and between CJK characters.
fn wrap_all(text: &str, size: f64, max_width: f64) -> Vec<String> {
    let max_em = (max_width / size).max(1.0);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut width = 0.0;
    let mut pending_space = false;
    for token in tokens(text) {
        if token == " " {
            pending_space = !line.is_empty();
            continue;
        }
        let tw = text_em(&token);
        let sw = if pending_space { char_em(' ') } else { 0.0 };
        pending_space = false;
        if width + sw + tw <= max_em {
            if sw > 0.0 {
                line.push(' ');
            }
            line.push_str(&token);
            width += sw + tw;
            continue;
        }
        if !line.is_empty() && is_closing_punct(&token) {
            line.push_str(&token);
            width += tw;
            continue;
        }
        if !line.is_empty() && tw <= max_em {
            lines.push(std::mem::take(&mut line));
            line.push_str(&token);
            width = tw;
            continue;
        }
        // A word wider than a whole line: break it between characters.
        if !line.is_empty() && width + sw < max_em {
            if sw > 0.0 {
                line.push(' ');
                width += sw;
            }
        } else if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            width = 0.0;
        }
        for c in token.chars() {
            let cw = char_em(c);
            if width + cw > max_em && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                width = 0.0;
            }
            line.push(c);
            width += cw;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// [`wrap_all`], keeping at most `max_lines`: the last one kept then ends with "…".
fn wrap(text: &str, size: f64, max_width: f64, max_lines: usize) -> Vec<String> {
    truncate_lines(wrap_all(text, size, max_width), size, max_width, max_lines)
}

/// Keeps at most `max_lines` lines, ending the last one kept with "…" when some are cut.
fn truncate_lines(
    mut lines: Vec<String>,
    size: f64,
    max_width: f64,
    max_lines: usize,
) -> Vec<String> {
    let max_em = (max_width / size).max(1.0);
    if lines.len() > max_lines {
        lines.truncate(max_lines.max(1));
        if let Some(last) = lines.last_mut() {
            let ellipsis = char_em('…');
            while !last.is_empty() && text_em(last) + ellipsis > max_em {
                last.pop();
            }
            let trimmed = last.trim_end().len();
            last.truncate(trimmed);
            last.push('…');
        }
    }
    lines
}

/// Short phrases joined by " · ", a line broken between phrases rather than inside one
/// where possible.
fn pack(parts: &[String], size: f64, max_width: f64, max_lines: usize) -> Vec<String> {
    let max_em = (max_width / size).max(1.0);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for part in parts {
        let candidate = if line.is_empty() {
            part.clone()
        } else {
            format!("{line}{SEP}{part}")
        };
        if text_em(&candidate) <= max_em {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut wrapped = wrap_all(part, size, max_width);
        line = wrapped.pop().unwrap_or_default();
        lines.extend(wrapped);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    truncate_lines(lines, size, max_width, max_lines)
}

/// Separates the phrases of a step's small print.
const SEP: &str = " · ";

/// [`wrap`], with the lines made about equally long (no single word or character left
/// alone on the last line) when the text fits in `max_lines` without truncation.
fn wrap_balanced(text: &str, size: f64, max_width: f64, max_lines: usize) -> Vec<String> {
    let mut best = wrap_all(text, size, max_width);
    let count = best.len();
    if count < 2 || count > max_lines {
        return wrap(text, size, max_width, max_lines);
    }
    let mut width = max_width;
    loop {
        width -= size / 2.0;
        if width < size * 2.0 {
            break;
        }
        let narrower = wrap_all(text, size, width);
        if narrower.len() != count {
            break;
        }
        best = narrower;
    }
    best
}

/// Escapes text for XML content and attribute values, dropping characters XML 1.0 does
/// not allow at all (control characters other than tab and line breaks).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A coordinate, rounded to 0.1 px, without a trailing `.0`.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Lower-cases the first letter of an English label used inside a sentence
/// ("Resources needed" → "resources needed"), leaving acronyms ("CPU …") alone.
fn in_sentence(label: &str) -> String {
    let mut chars = label.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && !b.is_ascii_uppercase() => {
            let mut out = a.to_ascii_lowercase().to_string();
            out.push_str(&label[a.len_utf8()..]);
            out
        }
        _ => label.to_string(),
    }
}

// ---- the words of the picture -----------------------------------------------------------

/// An organization as shown: a resolved name, or a description of who it will be.
struct OrgLabel {
    text: String,
    resolved: bool,
}

/// Everything render needs, with states worked out.
struct Ctx<'a> {
    def: &'a Definition,
    orgs: &'a OrgDirectory,
    en: bool,
    form: Option<&'a Value>,
    district: Option<&'a str>,
    /// Effective state of each step, by index in `def.steps`.
    states: Vec<StepState>,
    /// The edges, in a fixed order (see [`Ctx::edges`]).
    edges: Vec<EdgeSpec>,
}

/// One arrow of the definition, between node indices (0 start, 1..=n steps, n+1 end).
struct EdgeSpec {
    from: usize,
    to: usize,
    /// The branch has no condition.
    default: bool,
    /// The label's text (a condition, or "otherwise" beside conditional siblings).
    label: Option<String>,
    /// Not on the application's route (form known, branch not taken) or into or out of a
    /// skipped step: drawn dashed.
    off: bool,
    /// Travelled already: from the start or a done step to a done or current one.
    done: bool,
}

impl<'a> Ctx<'a> {
    fn new(input: &DiagramInput<'a>) -> Self {
        let def = input.definition;
        let route: Option<BTreeSet<&str>> = input.form.map(|f| {
            planned_route(def, f)
                .iter()
                .map(|s| s.id.as_str())
                .collect()
        });
        let states = def
            .steps
            .iter()
            .map(|s| match input.states.get(&s.id) {
                Some(st) => *st,
                None if route.as_ref().is_some_and(|r| !r.contains(s.id.as_str())) => {
                    StepState::Skipped
                }
                None => StepState::Upcoming,
            })
            .collect();
        let mut ctx = Ctx {
            def,
            orgs: input.orgs,
            en: input.locale.starts_with("en"),
            form: input.form,
            district: input.company_district,
            states,
            edges: Vec::new(),
        };
        ctx.edges = ctx.edge_specs();
        ctx
    }

    fn tr(&self, zh: &'static str, en: &'static str) -> &'static str {
        if self.en { en } else { zh }
    }

    fn end_node(&self) -> usize {
        self.def.steps.len() + 1
    }

    /// The node index of a step id (the first step with it).
    fn node_of(&self, id: &str) -> Option<usize> {
        self.def
            .steps
            .iter()
            .position(|s| s.id == id)
            .map(|i| i + 1)
    }

    fn target_node(&self, t: &Target) -> Option<usize> {
        match t {
            Target::End => Some(self.end_node()),
            Target::Step(id) => self.node_of(id),
        }
    }

    fn node_state(&self, node: usize) -> Option<StepState> {
        node.checked_sub(1)
            .and_then(|i| self.states.get(i))
            .copied()
    }

    /// Every step is done or skipped (and one is done): the route has reached its end.
    fn finished(&self) -> bool {
        self.states.contains(&StepState::Done)
            && self
                .states
                .iter()
                .all(|s| matches!(s, StepState::Done | StepState::Skipped))
    }

    fn edge_specs(&self) -> Vec<EdgeSpec> {
        let def = self.def;
        let mut raw: Vec<(usize, usize, bool, Option<String>)> = Vec::new();
        if let Some(first) = self.node_of(&def.start) {
            raw.push((0, first, true, None));
        }
        for (i, step) in def.steps.iter().enumerate() {
            let several = step.next.len() > 1;
            for b in &step.next {
                let Some(to) = self.target_node(&b.to) else {
                    continue;
                };
                let label = match &b.when {
                    Some(c) => Some(format!(
                        "{}{}",
                        self.tr("若", "if "),
                        self.condition_text(c)
                    )),
                    None if several => Some(self.tr("否则", "otherwise").to_string()),
                    None => None,
                };
                raw.push((i + 1, to, b.when.is_none(), label));
            }
        }
        // The branches taken when the form is known: walk the route from the start.
        let taken: Option<BTreeSet<usize>> = self.form.map(|form| {
            let mut taken = BTreeSet::new();
            let mut seen = BTreeSet::new();
            let mut node = 0;
            while seen.insert(node) {
                let next = if node == 0 {
                    raw.iter().position(|e| e.0 == 0)
                } else {
                    let step = &def.steps[node - 1];
                    step.next
                        .iter()
                        .find(|b| b.when.as_ref().is_none_or(|c| c.holds(form)))
                        .and_then(|b| self.target_node(&b.to))
                        .and_then(|to| raw.iter().position(|e| e.0 == node && e.1 == to))
                };
                let Some(e) = next else { break };
                taken.insert(e);
                node = raw[e].1;
                if node == self.end_node() {
                    break;
                }
            }
            taken
        });
        let finished = self.finished();
        raw.into_iter()
            .enumerate()
            .map(|(k, (from, to, default, label))| {
                let skipped = |n: usize| self.node_state(n) == Some(StepState::Skipped);
                let off =
                    taken.as_ref().is_some_and(|t| !t.contains(&k)) || skipped(from) || skipped(to);
                let from_done = from == 0 || self.node_state(from) == Some(StepState::Done);
                let to_done = if to == self.end_node() {
                    finished
                } else {
                    matches!(
                        self.node_state(to),
                        Some(StepState::Done | StepState::Current)
                    )
                };
                EdgeSpec {
                    from,
                    to,
                    default,
                    label,
                    off,
                    done: !off && from_done && to_done,
                }
            })
            .collect()
    }

    fn field_label(&self, field: &str) -> String {
        let label = self
            .def
            .field(field)
            .map_or(field, |f| f.label.get(if self.en { "en" } else { "zh" }));
        if self.en {
            in_sentence(label)
        } else {
            label.to_string()
        }
    }

    fn option_label(&self, field: &str, option: &str) -> String {
        let locale = if self.en { "en" } else { "zh" };
        self.def
            .field(field)
            .map_or(option, |f| f.option_label(option, locale))
            .to_string()
    }

    /// A short description of a condition ("所需资源含公共数据集",
    /// "resources needed: Public data sets").
    fn condition_text(&self, c: &Condition) -> String {
        match c {
            Condition::AnyOf { field, values } => {
                let label = self.field_label(field);
                let values = values
                    .iter()
                    .map(|v| self.option_label(field, v))
                    .collect::<Vec<_>>()
                    .join(self.tr("、", " or "));
                let multi = self
                    .def
                    .field(field)
                    .is_some_and(|f| f.field_type == FieldType::MultiChoice);
                if self.en {
                    format!("{label}: {values}")
                } else if multi {
                    format!("{label}含{values}")
                } else {
                    format!("{label}为{values}")
                }
            }
            Condition::Equals { field, value } => {
                let label = self.field_label(field);
                match value {
                    Value::Bool(true) => label,
                    Value::Bool(false) => format!("{label}{}", self.tr("：否", ": no")),
                    Value::String(s) => {
                        let option = self.option_label(field, s);
                        if self.en {
                            format!("{label}: {option}")
                        } else {
                            format!("{label}为{option}")
                        }
                    }
                    other => format!("{label} = {other}"),
                }
            }
            Condition::All(cs) => cs
                .iter()
                .map(|c| self.condition_text(c))
                .collect::<Vec<_>>()
                .join(self.tr("且", " and ")),
            Condition::Any(cs) => cs
                .iter()
                .map(|c| self.condition_text(c))
                .collect::<Vec<_>>()
                .join(self.tr("或", " or ")),
        }
    }

    fn org_name(&self, code: &str) -> Option<String> {
        self.orgs.by_code(code).map(|o| {
            if self.en {
                o.name_en.clone()
            } else {
                o.name_zh.clone()
            }
        })
    }

    /// The organization chosen in an organization field of the form, when known.
    fn form_org(&self, field: &str) -> Option<&'a str> {
        self.form.and_then(|f| f.get(field)).and_then(Value::as_str)
    }

    fn org_label(&self, r: &OrgRef) -> OrgLabel {
        let resolved = |text: String| OrgLabel {
            text,
            resolved: true,
        };
        let placeholder = |text: String| OrgLabel {
            text,
            resolved: false,
        };
        match r {
            OrgRef::Code(code) => resolved(self.org_name(code).unwrap_or_else(|| code.clone())),
            OrgRef::CompanyDistrict => match self.district.and_then(|c| self.org_name(c)) {
                Some(name) => resolved(name),
                None => placeholder(self.tr("企业所在区", "The company's district").to_string()),
            },
            OrgRef::FormField(field) => match self.form_org(field).and_then(|c| self.org_name(c)) {
                Some(name) => resolved(name),
                None => {
                    let label = self.field_label(field);
                    placeholder(if self.en {
                        format!("The selected {label}")
                    } else {
                        format!("所选{label}")
                    })
                }
            },
            OrgRef::FormFieldSupervisor(field) => {
                let supervisor = self
                    .form_org(field)
                    .and_then(|c| self.orgs.by_code(c))
                    .and_then(|o| o.supervisor_code.as_deref())
                    .and_then(|c| self.org_name(c));
                match supervisor {
                    Some(name) => resolved(name),
                    None => {
                        let label = self.field_label(field);
                        placeholder(if self.en {
                            format!("Bureau supervising the selected {label}")
                        } else {
                            format!("所选{label}的主管部门")
                        })
                    }
                }
            }
        }
    }

    /// The organizations of a step as shown: for a countersign step the participants that
    /// (may) take part, conditional ones marked when the form is not known.
    fn step_orgs(&self, step: &Step) -> Vec<OrgLabel> {
        match &step.kind {
            StepKind::Review { organization } => vec![self.org_label(organization)],
            StepKind::Countersign { participants, .. } => participants
                .iter()
                .filter(|p| match (&p.when, self.form) {
                    (Some(c), Some(form)) => c.holds(form),
                    _ => true,
                })
                .map(|p| {
                    let mut label = self.org_label(&p.organization);
                    if p.when.is_some() && self.form.is_none() {
                        label
                            .text
                            .push_str(self.tr("（如适用）", " (if applicable)"));
                    }
                    label
                })
                .collect(),
        }
    }

    fn days(&self, days: u32) -> String {
        if self.en {
            if days == 1 {
                "1 working day".to_string()
            } else {
                format!("{days} working days")
            }
        } else {
            format!("{days}个工作日")
        }
    }

    /// The small line under the organizations: kind, applicability and promised time.
    fn meta(&self, step: &Step) -> String {
        self.meta_parts(step).join(SEP)
    }

    /// The phrases of [`Ctx::meta`].
    fn meta_parts(&self, step: &Step) -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        if matches!(step.kind, StepKind::Countersign { .. }) {
            parts.push(self.tr("会签", "Countersign").to_string());
        }
        if step.when.is_some() && self.form.is_none() {
            parts.push(self.tr("如适用", "if applicable").to_string());
        }
        parts.push(self.days(step.promised_days));
        // A phrase that starts the line starts with a capital.
        if let Some(first) = parts.first_mut()
            && let Some(c) = first.get(..1)
        {
            *first = format!("{}{}", c.to_ascii_uppercase(), &first[1..]);
        }
        parts
    }

    fn marker(&self, state: StepState) -> Option<&'static str> {
        match state {
            StepState::Current => Some(self.tr("▶ 当前", "▶ Current")),
            StepState::Done => Some(self.tr("✓ 已完成", "✓ Done")),
            StepState::Skipped => Some(self.tr("已跳过", "Skipped")),
            StepState::Upcoming => None,
        }
    }

    fn state_words(&self, state: StepState) -> &'static str {
        match state {
            StepState::Done => self.tr("已完成", "done"),
            StepState::Current => self.tr("当前步骤", "current step"),
            StepState::Upcoming => self.tr("待办理", "upcoming"),
            StepState::Skipped => self.tr("已跳过", "skipped"),
        }
    }

    fn start_caption(&self) -> &'static str {
        self.tr("提交", "Submitted")
    }

    fn end_caption(&self) -> &'static str {
        self.tr("通过", "Approved")
    }
}

// ---- step boxes --------------------------------------------------------------------------

/// One line of text in a step box, `baseline` from the box's top.
struct BoxLine {
    text: String,
    class: &'static str,
    size: f64,
    bold: bool,
    bullet: bool,
    indent: f64,
    baseline: f64,
}

struct StepBox {
    lines: Vec<BoxLine>,
    height: f64,
    /// The full, untruncated text, for the hover tooltip.
    tooltip: String,
}

/// The width a bold text needs, a little more than regular.
const BOLD: f64 = 1.06;

fn natural_box_width(ctx: &Ctx<'_>) -> f64 {
    let locale = if ctx.en { "en" } else { "zh" };
    let mut widest: f64 = 0.0;
    for (step, state) in ctx.def.steps.iter().zip(&ctx.states) {
        widest = widest.max(text_em(step.name.get(locale)) * NAME_SIZE * BOLD);
        let bullet = if matches!(step.kind, StepKind::Countersign { .. }) {
            BULLET_INDENT
        } else {
            0.0
        };
        for org in ctx.step_orgs(step) {
            widest = widest.max(text_em(&org.text) * ORG_SIZE + bullet);
        }
        widest = widest.max(text_em(&ctx.meta(step)) * META_SIZE);
        if let Some(m) = ctx.marker(*state) {
            widest = widest.max(text_em(m) * MARK_SIZE * BOLD);
        }
    }
    let max = if ctx.en { BOX_MAX_W_EN } else { BOX_MAX_W_ZH };
    (widest + 2.0 * BOX_PAD_X).clamp(BOX_MIN_W, max).ceil()
}

fn step_box(ctx: &Ctx<'_>, index: usize, width: f64) -> StepBox {
    let locale = if ctx.en { "en" } else { "zh" };
    let step = &ctx.def.steps[index];
    let state = ctx.states[index];
    let inner = width - 2.0 * BOX_PAD_X;
    let mut lines = Vec::new();
    let mut y = BOX_PAD_Y;
    let mut push = |y: &mut f64, line_h: f64, mut line: BoxLine| {
        line.baseline = *y + line_h / 2.0 + line.size * 0.36;
        *y += line_h;
        lines.push(line);
    };
    let line = |text: String, class: &'static str, size: f64| BoxLine {
        text,
        class,
        size,
        bold: false,
        bullet: false,
        indent: 0.0,
        baseline: 0.0,
    };
    if let Some(m) = ctx.marker(state) {
        let mut l = line(m.to_string(), "wf-marker", MARK_SIZE);
        l.bold = true;
        push(&mut y, MARK_LINE, l);
    }
    for text in wrap_balanced(step.name.get(locale), NAME_SIZE * BOLD, inner, 3) {
        let mut l = line(text, "wf-name", NAME_SIZE);
        l.bold = true;
        push(&mut y, NAME_LINE, l);
    }
    y += 3.0;
    let orgs = ctx.step_orgs(step);
    let countersign = matches!(step.kind, StepKind::Countersign { .. });
    let (org_width, max_lines) = if countersign {
        (inner - BULLET_INDENT, 3)
    } else {
        (inner, 3)
    };
    for org in &orgs {
        let class = if org.resolved {
            "wf-org"
        } else {
            "wf-org wf-org-placeholder"
        };
        for (k, text) in wrap_balanced(&org.text, ORG_SIZE, org_width, max_lines)
            .into_iter()
            .enumerate()
        {
            let mut l = line(text, class, ORG_SIZE);
            if countersign {
                l.indent = BULLET_INDENT;
                l.bullet = k == 0;
            }
            push(&mut y, ORG_LINE, l);
        }
    }
    if orgs.is_empty() {
        push(&mut y, ORG_LINE, line("—".to_string(), "wf-org", ORG_SIZE));
    }
    y += 3.0;
    let meta = ctx.meta(step);
    for text in pack(&ctx.meta_parts(step), META_SIZE, inner, 3) {
        push(&mut y, META_LINE, line(text, "wf-meta", META_SIZE));
    }
    y += BOX_PAD_Y;
    let mut tooltip = step.name.get(locale).to_string();
    for org in &orgs {
        tooltip.push('\n');
        tooltip.push_str(&org.text);
    }
    tooltip.push('\n');
    tooltip.push_str(&meta);
    if state != StepState::Upcoming {
        tooltip.push('\n');
        tooltip.push_str(ctx.state_words(state));
    }
    StepBox {
        lines,
        height: y.ceil(),
        tooltip,
    }
}

// ---- layout ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    End,
    Step(usize),
    /// A bend point of an edge that spans several layers.
    Dummy,
}

struct Node {
    kind: Kind,
    layer: usize,
    row: i64,
    /// Width of the drawn shape (0 for a dummy).
    width: f64,
    /// Extent above and below the row's centre line.
    up: f64,
    down: f64,
    /// Centre of the drawn shape.
    cx: f64,
    cy: f64,
}

struct Segment {
    from: usize,
    to: usize,
    /// Index into `Ctx::edges`.
    edge: usize,
}

struct EdgeLayout {
    /// The polyline, the last point being the arrow's tip.
    points: Vec<(f64, f64)>,
    /// Where the label's lines are centred, and their last baseline.
    label: Option<(f64, f64, Vec<String>)>,
}

struct Layout {
    nodes: Vec<Node>,
    boxes: BTreeMap<usize, StepBox>,
    box_width: f64,
    edges: Vec<EdgeLayout>,
    width: f64,
    height: f64,
}

impl Layout {
    fn build(ctx: &Ctx<'_>) -> Layout {
        let n = ctx.def.steps.len();
        let end = n + 1;
        let box_width = natural_box_width(ctx);
        let boxes: BTreeMap<usize, StepBox> = (0..n)
            .map(|i| (i + 1, step_box(ctx, i, box_width)))
            .collect();
        let start_caption = text_em(ctx.start_caption()) * TERMINAL_SIZE;
        let end_caption = text_em(ctx.end_caption()) * TERMINAL_SIZE;
        let mut nodes: Vec<Node> = (0..=end)
            .map(|k| {
                let (kind, width, up, down) = if k == 0 {
                    (
                        Kind::Start,
                        (2.0 * START_R).max(start_caption),
                        START_R,
                        START_R + TERMINAL_CAPTION,
                    )
                } else if k == end {
                    (
                        Kind::End,
                        (2.0 * END_R).max(end_caption),
                        END_R,
                        END_R + TERMINAL_CAPTION,
                    )
                } else {
                    let h = boxes.get(&k).map_or(40.0, |b| b.height);
                    (Kind::Step(k - 1), box_width, h / 2.0, h / 2.0)
                };
                Node {
                    kind,
                    layer: 0,
                    row: 0,
                    width,
                    up,
                    down,
                    cx: 0.0,
                    cy: 0.0,
                }
            })
            .collect();

        // Back edges (cycles are allowed by the format): found by a depth-first search from
        // the start, then from any node it did not reach, in a fixed order.
        let edges = &ctx.edges;
        let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); end + 1];
        for (k, e) in edges.iter().enumerate() {
            out_edges[e.from].push(k);
        }
        let mut back = vec![false; edges.len()];
        let mut mark = vec![0u8; end + 1]; // 0 new, 1 on the stack, 2 finished
        for root in 0..=end {
            if mark[root] != 0 {
                continue;
            }
            mark[root] = 1;
            let mut stack = vec![(root, 0usize)];
            while let Some(top) = stack.last_mut() {
                let (v, k) = *top;
                if let Some(&e) = out_edges[v].get(k) {
                    top.1 += 1;
                    let w = edges[e].to;
                    match mark[w] {
                        0 => {
                            mark[w] = 1;
                            stack.push((w, 0));
                        }
                        1 => back[e] = true,
                        _ => {}
                    }
                } else {
                    mark[v] = 2;
                    stack.pop();
                }
            }
        }

        // Layers: the longest path from the sources over the forward edges.
        let mut indegree = vec![0usize; end + 1];
        for (k, e) in edges.iter().enumerate() {
            if !back[k] {
                indegree[e.to] += 1;
            }
        }
        let mut queue: VecDeque<usize> = (0..=end).filter(|&v| indegree[v] == 0).collect();
        while let Some(v) = queue.pop_front() {
            for &k in &out_edges[v] {
                if back[k] {
                    continue;
                }
                let w = edges[k].to;
                nodes[w].layer = nodes[w].layer.max(nodes[v].layer + 1);
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    queue.push_back(w);
                }
            }
        }
        let last = nodes[..end].iter().map(|nd| nd.layer).max().unwrap_or(0) + 1;
        nodes[0].layer = 0;
        nodes[end].layer = last;

        // Dummy nodes on long edges; each forward edge becomes a chain of segments.
        let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
        for (k, e) in edges.iter().enumerate() {
            let mut chain = vec![e.from];
            if !back[k] {
                let (a, b) = (nodes[e.from].layer, nodes[e.to].layer);
                for layer in a + 1..b {
                    chain.push(nodes.len());
                    nodes.push(Node {
                        kind: Kind::Dummy,
                        layer,
                        row: 0,
                        width: 0.0,
                        up: 3.0,
                        down: 3.0,
                        cx: 0.0,
                        cy: 0.0,
                    });
                }
            }
            chain.push(e.to);
            chains.push(chain);
        }
        let mut segments: Vec<Segment> = Vec::new();
        for (k, chain) in chains.iter().enumerate() {
            if back[k] {
                continue;
            }
            for pair in chain.windows(2) {
                segments.push(Segment {
                    from: pair[0],
                    to: pair[1],
                    edge: k,
                });
            }
        }
        let count = nodes.len();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); count];
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (s, seg) in segments.iter().enumerate() {
            succ[seg.from].push(s);
            pred[seg.to].push(s);
        }

        // The spine: from the start to the end through the most steps (on a tie, the
        // default branch), kept straight on row 0.
        let layer_count = last + 1;
        let mut by_layer: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
        for (v, nd) in nodes.iter().enumerate() {
            by_layer[nd.layer].push(v);
        }
        let mut score: Vec<Option<i64>> = vec![None; count];
        let mut next_on_spine: Vec<Option<usize>> = vec![None; count];
        score[end] = Some(0);
        for layer in by_layer.iter().rev() {
            for &v in layer {
                if v == end {
                    continue;
                }
                let own = i64::from(matches!(nodes[v].kind, Kind::Step(_)));
                let mut best: Option<(i64, bool, usize)> = None;
                for &s in &succ[v] {
                    let seg = &segments[s];
                    let Some(sc) = score[seg.to] else { continue };
                    let candidate = (sc, edges[seg.edge].default, seg.to);
                    if best.is_none_or(|b| (candidate.0, candidate.1) > (b.0, b.1)) {
                        best = Some(candidate);
                    }
                }
                if let Some((sc, _, to)) = best {
                    score[v] = Some(sc + own);
                    next_on_spine[v] = Some(to);
                }
            }
        }
        let mut on_spine = vec![false; count];
        let mut v = 0;
        on_spine[0] = true;
        while let Some(w) = next_on_spine[v] {
            if on_spine[w] {
                break;
            }
            on_spine[w] = true;
            v = w;
        }

        // Rows: the spine on row 0; every other node as near to its predecessors' rows as
        // a free row allows (steps prefer below, edge bends above).
        let mut assigned = vec![false; count];
        for layer in &by_layer {
            let mut used: BTreeSet<i64> = BTreeSet::new();
            for &v in layer {
                if on_spine[v] {
                    nodes[v].row = 0;
                    assigned[v] = true;
                    used.insert(0);
                }
            }
            let mut rest: Vec<(f64, usize)> = layer
                .iter()
                .filter(|&&v| !on_spine[v])
                .map(|&v| {
                    let rows: Vec<f64> = pred[v]
                        .iter()
                        .map(|&s| segments[s].from)
                        .filter(|&u| assigned[u])
                        .map(|u| nodes[u].row as f64)
                        .collect();
                    let desired = if rows.is_empty() {
                        0.0
                    } else {
                        rows.iter().sum::<f64>() / rows.len() as f64
                    };
                    (desired, v)
                })
                .collect();
            rest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (desired, v) in rest {
                let base = desired.round() as i64;
                let sign = if nodes[v].kind == Kind::Dummy { -1 } else { 1 };
                let row = (0..)
                    .flat_map(|d: i64| [base + sign * d, base - sign * d])
                    .find(|r| !used.contains(r))
                    .unwrap_or(base);
                used.insert(row);
                nodes[v].row = row;
                assigned[v] = true;
            }
        }

        // Forks and joins: where a node's edges go to (come from) several rows, they bend
        // next to it, so they share one trunk.
        let rows_of = |segs: &[usize], far: &dyn Fn(&Segment) -> usize| {
            segs.iter()
                .map(|&s| nodes[far(&segments[s])].row)
                .collect::<BTreeSet<i64>>()
                .len()
        };
        let forks: Vec<bool> = (0..count)
            .map(|v| nodes[v].kind != Kind::Dummy && rows_of(&succ[v], &|s| s.to) > 1)
            .collect();
        let joins: Vec<bool> = (0..count)
            .map(|v| nodes[v].kind != Kind::Dummy && rows_of(&pred[v], &|s| s.from) > 1)
            .collect();

        // Edge labels (wrapped), and the room they need.
        let labels: Vec<Vec<String>> = edges
            .iter()
            .map(|e| {
                e.label
                    .as_deref()
                    .map(|l| wrap_balanced(l, LABEL_SIZE, LABEL_MAX_W, 3))
                    .unwrap_or_default()
            })
            .collect();
        let label_width = |lines: &[String]| {
            lines
                .iter()
                .map(|l| text_em(l) * LABEL_SIZE)
                .fold(0.0, f64::max)
        };
        let label_height = |lines: &[String]| lines.len() as f64 * LABEL_LINE;
        let mut row_up: BTreeMap<i64, f64> = BTreeMap::new();
        let mut row_down: BTreeMap<i64, f64> = BTreeMap::new();
        for nd in &nodes {
            let up = row_up.entry(nd.row).or_insert(0.0);
            *up = up.max(nd.up);
            let down = row_down.entry(nd.row).or_insert(0.0);
            *down = down.max(nd.down);
        }
        let mut gaps = vec![GAP; layer_count];
        for (k, chain) in chains.iter().enumerate() {
            if back[k] || labels[k].is_empty() {
                continue;
            }
            let (a, b) = (chain[0], chain[1]);
            let up = row_up.entry(nodes[b].row).or_insert(0.0);
            *up = up.max(label_height(&labels[k]) + 6.0);
            if nodes[b].kind != Kind::Dummy {
                let need = if forks[a] { FORK } else { 0.0 }
                    + if joins[b] { FORK } else { 0.0 }
                    + label_width(&labels[k])
                    + ARROW
                    + 16.0;
                let gap = &mut gaps[nodes[a].layer];
                *gap = gap.max(need.ceil());
            }
        }

        // Coordinates.
        let mut layer_width = vec![0.0_f64; layer_count];
        for nd in &nodes {
            layer_width[nd.layer] = layer_width[nd.layer].max(nd.width);
        }
        let mut layer_x = vec![0.0_f64; layer_count];
        let mut x = PAD;
        for (l, lx) in layer_x.iter_mut().enumerate() {
            *lx = x;
            x += layer_width[l] + gaps[l];
        }
        let width = x - gaps[layer_count - 1] + PAD;
        let mut row_cy: BTreeMap<i64, f64> = BTreeMap::new();
        let mut y = PAD;
        for (row, up) in &row_up {
            let cy = y + up;
            row_cy.insert(*row, cy);
            y = cy + row_down.get(row).copied().unwrap_or(0.0) + ROW_GAP;
        }
        let mut bottom = y - ROW_GAP;
        for nd in nodes.iter_mut() {
            nd.cx = layer_x[nd.layer] + layer_width[nd.layer] / 2.0;
            nd.cy = row_cy.get(&nd.row).copied().unwrap_or(PAD);
            if nd.kind == Kind::Dummy {
                nd.width = layer_width[nd.layer];
            }
        }
        // Where edges leave and enter a node.
        let exit_x = |v: usize| match nodes[v].kind {
            Kind::Start => nodes[v].cx + START_R,
            Kind::End => nodes[v].cx + END_R,
            Kind::Step(_) | Kind::Dummy => nodes[v].cx + nodes[v].width / 2.0,
        };
        let entry_x = |v: usize| match nodes[v].kind {
            Kind::Start => nodes[v].cx - START_R,
            Kind::End => nodes[v].cx - END_R,
            Kind::Step(_) | Kind::Dummy => nodes[v].cx - nodes[v].width / 2.0,
        };
        let bend_x = |a: usize, b: usize| {
            if forks[a] {
                exit_x(a) + FORK
            } else if joins[b] {
                entry_x(b) - FORK
            } else {
                (exit_x(a) + entry_x(b)) / 2.0
            }
        };

        let mut routed = Vec::with_capacity(edges.len());
        let mut channel = bottom;
        for (k, chain) in chains.iter().enumerate() {
            let lines = labels[k].clone();
            if back[k] {
                // Back to an earlier step: down from the source, along a channel under the
                // picture, up into the target.
                let (s, t) = (&nodes[chain[0]], &nodes[chain[chain.len() - 1]]);
                channel += 16.0;
                let sx = s.cx + 8.0;
                let tx = t.cx - 8.0;
                let points = vec![
                    (sx, s.cy + s.down),
                    (sx, channel),
                    (tx, channel),
                    (tx, t.cy + t.down),
                ];
                let label = if lines.is_empty() {
                    None
                } else {
                    let last = channel + 3.0 + label_height(&lines);
                    channel += label_height(&lines);
                    Some(((sx + tx) / 2.0, last, lines))
                };
                routed.push(EdgeLayout { points, label });
                continue;
            }
            let mut points: Vec<(f64, f64)> = Vec::new();
            for pair in chain.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let (ya, yb) = (nodes[a].cy, nodes[b].cy);
                if points.is_empty() {
                    points.push((exit_x(a), ya));
                } else {
                    points.push((entry_x(a), ya));
                    points.push((exit_x(a), ya));
                }
                if (ya - yb).abs() > 0.05 {
                    let bx = bend_x(a, b);
                    points.push((bx, ya));
                    points.push((bx, yb));
                }
                points.push((entry_x(b), yb));
            }
            let label = if lines.is_empty() || chain.len() < 2 {
                None
            } else {
                let (a, b) = (chain[0], chain[1]);
                let y = nodes[b].cy;
                let from = if (nodes[a].cy - y).abs() > 0.05 {
                    bend_x(a, b)
                } else if forks[a] {
                    exit_x(a) + FORK
                } else {
                    exit_x(a)
                };
                let to = if nodes[b].kind == Kind::Dummy {
                    exit_x(b)
                } else {
                    entry_x(b) - ARROW - if joins[b] { FORK } else { 0.0 }
                };
                Some(((from + to) / 2.0, y - 5.0, lines))
            };
            routed.push(EdgeLayout {
                points: simplify(points),
                label,
            });
        }
        if channel > bottom {
            bottom = channel + 4.0;
        }
        Layout {
            nodes,
            boxes,
            box_width,
            edges: routed,
            width: width.ceil(),
            height: (bottom + PAD).ceil(),
        }
    }
}

/// Drops repeated points and the middle of three points on one straight line.
fn simplify(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for p in points {
        if out
            .last()
            .is_some_and(|q| (q.0 - p.0).abs() < 0.05 && (q.1 - p.1).abs() < 0.05)
        {
            continue;
        }
        if out.len() >= 2 {
            let a = out[out.len() - 2];
            let b = out[out.len() - 1];
            let cross = (b.0 - a.0) * (p.1 - b.1) - (b.1 - a.1) * (p.0 - b.0);
            let forward = (b.0 - a.0) * (p.0 - b.0) + (b.1 - a.1) * (p.1 - b.1);
            if cross.abs() < 0.01 && forward >= 0.0 {
                out.pop();
            }
        }
        out.push(p);
    }
    out
}

// ---- drawing -----------------------------------------------------------------------------

fn unit(from: (f64, f64), to: (f64, f64)) -> (f64, f64, f64) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1e-9 {
        (0.0, 0.0, 0.0)
    } else {
        (dx / len, dy / len, len)
    }
}

/// The path of a polyline with rounded corners, ending `ARROW` short of the last point
/// (where the arrowhead is), and the arrowhead.
fn edge_paths(points: &[(f64, f64)]) -> Option<(String, String)> {
    let (&tip, rest) = points.split_last()?;
    let &before = rest.last()?;
    let (ux, uy, len) = unit(before, tip);
    let shaft_end = if len > ARROW {
        (tip.0 - ux * ARROW, tip.1 - uy * ARROW)
    } else {
        before
    };
    let mut pts: Vec<(f64, f64)> = rest.to_vec();
    pts.push(shaft_end);
    let mut d = format!("M{} {}", num(pts[0].0), num(pts[0].1));
    for w in pts.windows(3) {
        let (a, p, b) = (w[0], w[1], w[2]);
        let (ix, iy, il) = unit(a, p);
        let (ox, oy, ol) = unit(p, b);
        let r = CORNER.min(il / 2.0).min(ol / 2.0);
        let _ = write!(
            d,
            " L{} {} Q{} {} {} {}",
            num(p.0 - ix * r),
            num(p.1 - iy * r),
            num(p.0),
            num(p.1),
            num(p.0 + ox * r),
            num(p.1 + oy * r)
        );
    }
    if let Some(&(x, y)) = pts.last() {
        let _ = write!(d, " L{} {}", num(x), num(y));
    }
    let (px, py) = (-uy, ux);
    let half = ARROW * 0.45;
    let base = (tip.0 - ux * ARROW, tip.1 - uy * ARROW);
    let arrow = format!(
        "M{} {} L{} {} L{} {} Z",
        num(tip.0),
        num(tip.1),
        num(base.0 + px * half),
        num(base.1 + py * half),
        num(base.0 - px * half),
        num(base.1 - py * half)
    );
    Some((d, arrow))
}

fn state_class(state: StepState) -> &'static str {
    match state {
        StepState::Done => "wf-state-done",
        StepState::Current => "wf-state-current",
        StepState::Upcoming => "wf-state-upcoming",
        StepState::Skipped => "wf-state-skipped",
    }
}

/// The id prefix of this diagram's `<title>` and `<desc>`.
fn id_prefix(def: &Definition) -> String {
    let key: String = def
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("wf-{key}")
}

/// The text alternative: the route in words, step by step, and where the application is.
fn description(ctx: &Ctx<'_>, layout: &Layout) -> String {
    let locale = if ctx.en { "en" } else { "zh" };
    let def = ctx.def;
    let mut order: Vec<(usize, i64, usize)> = layout
        .nodes
        .iter()
        .filter_map(|nd| match nd.kind {
            Kind::Step(i) => Some((nd.layer, nd.row, i)),
            _ => None,
        })
        .collect();
    order.sort();
    let number: BTreeMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(k, &(_, _, i))| (i, k + 1))
        .collect();
    let name_of = |node: usize| -> String {
        if node == ctx.end_node() {
            ctx.end_caption().to_string()
        } else {
            node.checked_sub(1)
                .and_then(|i| def.steps.get(i))
                .map(|s| s.name.get(locale).to_string())
                .unwrap_or_default()
        }
    };
    let mut out = if ctx.en {
        format!(
            "Workflow of {}: {} steps after submission.",
            def.name.en,
            order.len()
        )
    } else {
        format!("{}办理流程：提交后共{}个步骤。", def.name.zh, order.len())
    };
    for &(_, _, i) in &order {
        let step = &def.steps[i];
        let orgs = ctx
            .step_orgs(step)
            .into_iter()
            .map(|o| o.text)
            .collect::<Vec<_>>()
            .join(ctx.tr("、", ", "));
        let k = number.get(&i).copied().unwrap_or(0);
        let state = ctx.state_words(ctx.states[i]);
        if ctx.en {
            let _ = write!(
                out,
                " {k}. {}: {}; {}; {}.",
                step.name.en,
                orgs,
                ctx.meta(step),
                state
            );
        } else {
            let _ = write!(
                out,
                "{k}. {}：{}；{}；{}。",
                step.name.zh,
                orgs,
                ctx.meta(step),
                state
            );
        }
        let branches: Vec<&EdgeSpec> = ctx.edges.iter().filter(|e| e.from == i + 1).collect();
        if branches.len() > 1 {
            let parts: Vec<String> = branches
                .iter()
                .map(|e| {
                    let label = e.label.clone().unwrap_or_default();
                    if ctx.en && e.default {
                        format!("{label} {}", name_of(e.to))
                    } else if ctx.en {
                        format!("{} {label}", name_of(e.to))
                    } else {
                        format!("{label}，转{}", name_of(e.to))
                    }
                })
                .collect();
            if ctx.en {
                let _ = write!(out, " Next: {}.", parts.join("; "));
            } else {
                let _ = write!(out, "之后{}。", parts.join("；"));
            }
        }
    }
    let current: Vec<&str> = def
        .steps
        .iter()
        .zip(&ctx.states)
        .filter(|(_, s)| **s == StepState::Current)
        .map(|(s, _)| s.name.get(locale))
        .collect();
    if !current.is_empty() {
        if ctx.en {
            let _ = write!(out, " Current step: {}.", current.join(", "));
        } else {
            let _ = write!(out, "当前步骤：{}。", current.join("、"));
        }
    } else if ctx.finished() {
        out.push_str(ctx.tr("全部步骤已完成。", " All steps are done."));
    }
    out
}

fn draw(ctx: &Ctx<'_>, layout: &Layout) -> String {
    let id = id_prefix(ctx.def);
    let title = if ctx.en {
        format!("Workflow: {}", ctx.def.name.en)
    } else {
        format!("办理流程：{}", ctx.def.name.zh)
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"wf-diagram\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" viewBox=\"0 0 {w} {h}\" width=\"100%\" \
         preserveAspectRatio=\"xMidYMid meet\" font-family=\"{FONT_FAMILY}\" \
         fill=\"currentColor\">",
        w = num(layout.width),
        h = num(layout.height)
    );
    let _ = write!(
        out,
        "<title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        esc(&title),
        esc(&description(ctx, layout))
    );

    // Edges under the nodes.
    out.push_str("<g class=\"wf-edges\">");
    for (spec, edge) in ctx.edges.iter().zip(&layout.edges) {
        let Some((d, arrow)) = edge_paths(&edge.points) else {
            continue;
        };
        let mut class = String::from("wf-edge");
        if spec.label.is_some() && !spec.default {
            class.push_str(" wf-edge-cond");
        }
        if spec.off {
            class.push_str(" wf-edge-off");
        }
        if spec.done {
            class.push_str(" wf-edge-done");
        }
        let dash = if spec.off {
            " stroke-dasharray=\"5 4\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" stroke=\"currentColor\" \
             stroke-width=\"1.5\" stroke-linejoin=\"round\"{dash}/>"
        );
        let arrow_class = class.replacen("wf-edge", "wf-arrow", 1);
        let _ = write!(
            out,
            "<path class=\"{arrow_class}\" d=\"{arrow}\" fill=\"currentColor\" stroke=\"none\"/>"
        );
    }
    out.push_str("</g>");

    // Nodes.
    out.push_str("<g class=\"wf-nodes\">");
    for nd in &layout.nodes {
        match nd.kind {
            Kind::Dummy => {}
            Kind::Start => {
                let _ = write!(
                    out,
                    "<g class=\"wf-start\"><circle cx=\"{}\" cy=\"{}\" r=\"{}\" \
                     fill=\"currentColor\"/>",
                    num(nd.cx),
                    num(nd.cy),
                    num(START_R)
                );
                terminal_caption(&mut out, nd, START_R, ctx.start_caption());
                out.push_str("</g>");
            }
            Kind::End => {
                let class = if ctx.finished() {
                    "wf-end wf-end-reached"
                } else {
                    "wf-end"
                };
                let _ = write!(
                    out,
                    "<g class=\"{class}\"><circle class=\"wf-end-outer\" cx=\"{x}\" cy=\"{y}\" \
                     r=\"{r}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/>\
                     <circle class=\"wf-end-inner\" cx=\"{x}\" cy=\"{y}\" r=\"{ri}\" \
                     fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/>",
                    x = num(nd.cx),
                    y = num(nd.cy),
                    r = num(END_R),
                    ri = num(END_INNER_R)
                );
                terminal_caption(&mut out, nd, END_R, ctx.end_caption());
                out.push_str("</g>");
            }
            Kind::Step(i) => {
                if let Some(b) = layout.boxes.get(&(i + 1)) {
                    draw_step(&mut out, ctx.states[i], nd, b, layout.box_width);
                }
            }
        }
    }
    out.push_str("</g>");

    // Edge labels on top.
    out.push_str("<g class=\"wf-edge-labels\">");
    for edge in &layout.edges {
        let Some((x, last, lines)) = &edge.label else {
            continue;
        };
        let first = last - (lines.len().saturating_sub(1)) as f64 * LABEL_LINE;
        for (k, line) in lines.iter().enumerate() {
            let _ = write!(
                out,
                "<text class=\"wf-edge-label\" x=\"{}\" y=\"{}\" font-size=\"{}\" \
                 text-anchor=\"middle\">{}</text>",
                num(*x),
                num(first + k as f64 * LABEL_LINE),
                num(LABEL_SIZE),
                esc(line)
            );
        }
    }
    out.push_str("</g></svg>");
    out
}

fn terminal_caption(out: &mut String, nd: &Node, r: f64, caption: &str) {
    let _ = write!(
        out,
        "<text class=\"wf-terminal-label\" x=\"{}\" y=\"{}\" font-size=\"{}\" \
         text-anchor=\"middle\">{}</text>",
        num(nd.cx),
        num(nd.cy + r + 15.0),
        num(TERMINAL_SIZE),
        esc(caption)
    );
}

fn draw_step(out: &mut String, state: StepState, nd: &Node, b: &StepBox, width: f64) {
    let left = nd.cx - width / 2.0;
    let top = nd.cy - b.height / 2.0;
    let (stroke_width, dash) = match state {
        StepState::Current => ("3", ""),
        StepState::Skipped => ("1.25", " stroke-dasharray=\"6 4\""),
        StepState::Done | StepState::Upcoming => ("1.25", ""),
    };
    let _ = write!(
        out,
        "<g class=\"wf-step {}\"><title>{}</title><rect class=\"wf-box\" x=\"{}\" y=\"{}\" \
         width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"none\" stroke=\"currentColor\" \
         stroke-width=\"{stroke_width}\"{dash}/>",
        state_class(state),
        esc(&b.tooltip),
        num(left),
        num(top),
        num(width),
        num(b.height),
        num(BOX_RADIUS)
    );
    for line in &b.lines {
        let x = left + BOX_PAD_X + line.indent;
        let y = top + line.baseline;
        if line.bullet {
            let _ = write!(
                out,
                "<circle class=\"wf-bullet\" cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"currentColor\"/>",
                num(x - BULLET_INDENT + 3.0),
                num(y - line.size * 0.33)
            );
        }
        let weight = if line.bold {
            " font-weight=\"600\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<text class=\"{}\" x=\"{}\" y=\"{}\" font-size=\"{}\"{weight}>{}</text>",
            line.class,
            num(x),
            num(y),
            num(line.size),
            esc(&line.text)
        );
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::definition::{Text, builtin};
    use quick_xml::Reader;
    use quick_xml::XmlVersion;
    use quick_xml::events::Event;

    fn orgs() -> OrgDirectory {
        OrgDirectory::from_seed().expect("seed organizations parse")
    }

    fn definitions(orgs: &OrgDirectory) -> Vec<Definition> {
        builtin(orgs)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    /// Parses the whole document with quick-xml: balanced and matching tags, well-formed
    /// attributes, only the predefined entities; exactly one root element, `<svg>`.
    fn assert_well_formed(svg: &str) {
        let mut reader = Reader::from_str(svg);
        reader.config_mut().check_end_names = true;
        let mut depth = 0usize;
        let mut roots = 0usize;
        loop {
            match reader.read_event() {
                Ok(Event::Eof) => break,
                Ok(Event::Start(e)) => {
                    if depth == 0 {
                        roots += 1;
                        assert_eq!(e.name().as_ref(), "svg");
                    }
                    depth += 1;
                    for a in e.attributes().with_checks(true) {
                        let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{svg}"));
                        a.normalized_value(XmlVersion::Implicit1_0)
                            .unwrap_or_else(|err| panic!("bad attribute value: {err}"));
                    }
                }
                Ok(Event::Empty(e)) => {
                    assert!(depth > 0, "element outside the root");
                    for a in e.attributes().with_checks(true) {
                        let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{svg}"));
                        a.normalized_value(XmlVersion::Implicit1_0)
                            .unwrap_or_else(|err| panic!("bad attribute value: {err}"));
                    }
                }
                Ok(Event::End(_)) => depth -= 1,
                Ok(Event::GeneralRef(r)) => {
                    assert!(
                        r.is_char_ref() || ["amp", "lt", "gt", "quot", "apos"].contains(&&*r),
                        "unknown entity &{};",
                        &*r
                    );
                }
                Ok(Event::Text(t)) => {
                    assert!(
                        depth > 0 || t.trim_ascii().is_empty(),
                        "text outside the root"
                    );
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "not well-formed at {}: {e}\n{svg}",
                    reader.buffer_position()
                ),
            }
        }
        assert_eq!(depth, 0, "unclosed elements");
        assert_eq!(roots, 1, "one root element");
    }

    fn states(pairs: &[(&str, StepState)]) -> BTreeMap<String, StepState> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// The `<g>` of the step whose tooltip starts with `name`.
    fn step_group<'s>(svg: &'s str, name: &str) -> &'s str {
        let needle = format!("<title>{}", esc(name));
        let at = svg
            .find(&needle)
            .unwrap_or_else(|| panic!("no step {name}"));
        let start = svg[..at].rfind("<g ").unwrap_or(0);
        let end = svg[at..].find("</g>").map_or(svg.len(), |e| at + e);
        &svg[start..end]
    }

    #[test]
    fn every_builtin_definition_renders_well_formed_in_both_locales() {
        let orgs = orgs();
        for def in definitions(&orgs) {
            let first = def.start.clone();
            let second = def
                .steps
                .iter()
                .find(|s| s.id != first)
                .map(|s| s.id.clone());
            let mut st = states(&[(&first, StepState::Done)]);
            if let Some(second) = &second {
                st.insert(second.clone(), StepState::Current);
            }
            for locale in ["zh-CN", "en"] {
                let input = DiagramInput {
                    definition: &def,
                    orgs: &orgs,
                    locale,
                    states: &st,
                    form: None,
                    company_district: None,
                };
                let svg = render(&input);
                assert_well_formed(&svg);
                assert!(svg.starts_with("<svg "), "{svg}");
                assert!(svg.contains("role=\"img\""));
                assert!(svg.contains("width=\"100%\""));
                assert!(!svg.contains("style="), "inline style in {}", def.key);
                assert!(!svg.contains("<style"), "style element in {}", def.key);
                assert_eq!(svg, render(&input), "deterministic");
                for step in &def.steps {
                    let name = esc(step.name.get(locale));
                    assert!(svg.contains(&name), "{} missing in {}", name, def.key);
                }
                let marker = if locale == "en" {
                    "▶ Current"
                } else {
                    "▶ 当前"
                };
                let done = if locale == "en" {
                    "✓ Done"
                } else {
                    "✓ 已完成"
                };
                assert_eq!(svg.matches(marker).count(), 1, "{svg}");
                let first_name = def.step(&first).map(|s| s.name.get(locale)).unwrap_or("");
                assert!(step_group(&svg, first_name).contains(done));
                assert!(step_group(&svg, first_name).contains("wf-state-done"));
                if let Some(second) = def.step(second.as_deref().unwrap_or("")) {
                    let group = step_group(&svg, second.name.get(locale));
                    assert!(group.contains(marker), "{group}");
                    assert!(group.contains("wf-state-current"));
                    assert!(group.contains("stroke-width=\"3\""));
                }
                // The text alternative names the current step.
                let desc_start = svg.find("<desc").unwrap_or(0);
                let desc = &svg[desc_start..svg.find("</desc>").unwrap_or(svg.len())];
                if let Some(second) = def.step(second.as_deref().unwrap_or("")) {
                    assert!(desc.contains(&esc(second.name.get(locale))));
                }
                assert!(svg.contains("aria-labelledby=\"wf-"));
            }
        }
    }

    #[test]
    fn hostile_names_are_escaped() {
        let orgs = orgs();
        let mut def = definitions(&orgs).remove(0);
        def.steps[0].name = Text {
            zh: "<script>alert(1)</script> & \"审核\"\u{0}".to_string(),
            en: "<script>alert(1)</script> & 'review'".to_string(),
        };
        def.name.en = "A & B <i>".to_string();
        for locale in ["zh-CN", "en"] {
            let svg = render(&DiagramInput {
                definition: &def,
                orgs: &orgs,
                locale,
                states: &BTreeMap::new(),
                form: None,
                company_district: None,
            });
            assert_well_formed(&svg);
            assert!(!svg.contains("<script"), "{svg}");
            assert!(!svg.contains("<i>"));
            assert!(svg.contains("&lt;script&gt;"), "{svg}");
            assert!(svg.contains("&amp;"));
            assert!(!svg.contains('\u{0}'));
        }
    }

    #[test]
    fn the_form_and_district_resolve_organizations_and_branches() {
        let orgs = orgs();
        let defs = definitions(&orgs);
        let platform = defs
            .iter()
            .find(|d| d.key == "platform_access")
            .expect("platform definition");
        let none = BTreeMap::new();
        let unknown = render(&DiagramInput {
            definition: platform,
            orgs: &orgs,
            locale: "zh-CN",
            states: &none,
            form: None,
            company_district: None,
        });
        assert!(unknown.contains("所选平台"), "{unknown}");
        assert!(unknown.contains("若所需资源含公共数据集"), "{unknown}");
        assert!(unknown.contains("否则"));
        assert!(!unknown.contains("wf-state-skipped"));

        let form = serde_json::json!({"platform": "P-NSCC-TJ", "resources": ["gpu_card_hours"]});
        let known = render(&DiagramInput {
            definition: platform,
            orgs: &orgs,
            locale: "zh-CN",
            states: &none,
            form: Some(&form),
            company_district: None,
        });
        assert_well_formed(&known);
        assert!(known.contains("国家超级计算天津中心"));
        assert!(known.contains("市科委"), "the supervisor is resolved");
        assert!(!known.contains("所选平台"));
        let security = step_group(&known, "数据安全审查");
        assert!(security.contains("wf-state-skipped") && security.contains("已跳过"));
        assert!(security.contains("stroke-dasharray"));
        assert!(known.contains("wf-edge-off"));

        let yqyc = defs.iter().find(|d| d.key == "yqyc").expect("yqyc");
        let svg = render(&DiagramInput {
            definition: yqyc,
            orgs: &orgs,
            locale: "en",
            states: &none,
            form: None,
            company_district: Some("D-120116"),
        });
        assert!(svg.contains("Binhai") || svg.contains("滨海"), "{svg}");
        assert!(
            svg.contains("(if applicable)"),
            "conditional participants marked"
        );
        let zh = render(&DiagramInput {
            definition: yqyc,
            orgs: &orgs,
            locale: "zh-CN",
            states: &none,
            form: None,
            company_district: None,
        });
        assert!(zh.contains("企业所在区"));
        assert!(zh.contains("（如适用）"));
    }

    #[test]
    fn a_route_with_a_loop_renders() {
        let orgs = orgs();
        let source = r#"
key = "loop"
reference_prefix = "LOOP"
name = { zh = "循环", en = "Loop" }
summary = { zh = "测试", en = "Test" }
revision_days = 5
start = "a"

[[sections]]
id = "s"
name = { zh = "节", en = "Section" }

[[fields]]
name = "kind"
section = "s"
label = { zh = "类", en = "Kind" }
type = "choice"
options = ["x", "y"]

[[steps]]
id = "a"
name = { zh = "甲", en = "A" }
kind = "review"
organization = "TJ-MIIT"
promised_days = 2
next = "b"

[[steps]]
id = "b"
name = { zh = "乙", en = "B" }
kind = "review"
organization = "TJ-STC"
promised_days = 1
next = [ { when = { field = "kind", any_of = ["x"] }, to = "a" }, { to = "end" } ]
"#;
        let def = Definition::parse("loop.toml", source, &orgs).unwrap_or_else(|e| panic!("{e}"));
        let st = states(&[("b", StepState::Current)]);
        let svg = render(&DiagramInput {
            definition: &def,
            orgs: &orgs,
            locale: "en",
            states: &st,
            form: None,
            company_district: None,
        });
        assert_well_formed(&svg);
        assert!(svg.contains("if kind: x"), "{svg}");
        assert!(svg.contains("1 working day"));
    }

    #[test]
    fn labels_wrap_by_width_and_truncate_with_an_ellipsis() {
        // 10 CJK characters at 10 px are 100 px: two lines of 5 in 50 px.
        assert_eq!(
            wrap("一二三四五六七八九十", 10.0, 50.0, 3),
            ["一二三四五", "六七八九十"]
        );
        // Words stay whole; ASCII is 0.55 em.
        assert_eq!(
            wrap("Lead bureau review", 10.0, 70.0, 3),
            ["Lead bureau", "review"]
        );
        let long = wrap(
            "Municipal Commission of Industry and Information Technology",
            12.0,
            100.0,
            2,
        );
        assert_eq!(long.len(), 2);
        assert!(long[1].ends_with('…'), "{long:?}");
        // Closing punctuation does not start a line.
        assert_eq!(
            wrap("一二三四五，六", 10.0, 50.0, 3),
            ["一二三四五，", "六"]
        );
        // A word longer than a line is broken.
        assert!(wrap("abcdefghijklmnopqrstuvwxyz", 10.0, 55.0, 5).len() >= 3);
        assert!(wrap("", 10.0, 50.0, 3).is_empty());
    }
}
