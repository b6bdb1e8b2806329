//! The instances table as data: which rows a query asks for (filters by service, group,
//! phase and id), their order and the page shown. Pure: the views come in, the page goes
//! out, so thousands of instances cost one sort and a slice.

use std::collections::{BTreeSet, HashMap};

use crate::api::types::InstanceView;
use crate::observed::{Health, Phase};

/// Rows per page unless asked; and the most a page may hold.
pub(crate) const PER_PAGE: usize = 100;
pub(crate) const MAX_PER_PAGE: usize = 5000;

/// Every phase, in the order the overview counts them.
pub(crate) const PHASES: [Phase; 8] = [
    Phase::Running,
    Phase::Starting,
    Phase::Sleeping,
    Phase::Stopping,
    Phase::Stopped,
    Phase::Backoff,
    Phase::Failed,
    Phase::Exited,
];

/// What a column is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortKey {
    Instance,
    Phase,
    Health,
    Uptime,
    Weight,
    Restarts,
    Memory,
    Cpu,
    Disk,
    Wake,
}

impl SortKey {
    pub(crate) const ALL: [SortKey; 10] = [
        SortKey::Instance,
        SortKey::Phase,
        SortKey::Health,
        SortKey::Uptime,
        SortKey::Weight,
        SortKey::Restarts,
        SortKey::Memory,
        SortKey::Cpu,
        SortKey::Disk,
        SortKey::Wake,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SortKey::Instance => "instance",
            SortKey::Phase => "phase",
            SortKey::Health => "health",
            SortKey::Uptime => "uptime",
            SortKey::Weight => "weight",
            SortKey::Restarts => "restarts",
            SortKey::Memory => "memory",
            SortKey::Cpu => "cpu",
            SortKey::Disk => "disk",
            SortKey::Wake => "wake",
        }
    }

    fn parse(text: &str) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|key| key.as_str() == text)
    }
}

/// The query of the instances page (`/instances?service=&group=&phase=&q=&sort=&desc=&page=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableQuery {
    pub service: Option<String>,
    pub group: Option<String>,
    pub phase: Option<Phase>,
    /// A substring of the instance's key.
    pub search: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

impl Default for TableQuery {
    fn default() -> Self {
        Self {
            service: None,
            group: None,
            phase: None,
            search: None,
            sort: SortKey::Instance,
            descending: false,
            page: 1,
            per_page: PER_PAGE,
        }
    }
}

fn phase_of(text: &str) -> Option<Phase> {
    PHASES.into_iter().find(|phase| phase.as_str() == text)
}

impl TableQuery {
    /// The query of a URL's parameters; what does not parse is left at its default.
    pub(crate) fn parse(params: &HashMap<String, String>) -> TableQuery {
        let text = |name: &str| {
            params
                .get(name)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let number = |name: &str| params.get(name).and_then(|value| value.parse().ok());
        TableQuery {
            service: text("service"),
            group: text("group"),
            phase: text("phase").and_then(|phase| phase_of(&phase)),
            search: text("q"),
            sort: text("sort")
                .and_then(|sort| SortKey::parse(&sort))
                .unwrap_or(SortKey::Instance),
            descending: params.get("desc").is_some_and(|value| value == "1"),
            page: number("page").unwrap_or(1).max(1),
            per_page: number("per").unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE),
        }
    }

    /// This query as URL parameters, with `page` and, if given, another order.
    pub(crate) fn to_url(&self, page: usize, sort: Option<(SortKey, bool)>) -> String {
        let (sort, descending) = sort.unwrap_or((self.sort, self.descending));
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("service", self.service.as_deref()),
            ("group", self.group.as_deref()),
            ("phase", self.phase.map(Phase::as_str)),
            ("q", self.search.as_deref()),
        ] {
            if let Some(value) = value {
                url.append_pair(name, value);
            }
        }
        url.append_pair("sort", sort.as_str());
        if descending {
            url.append_pair("desc", "1");
        }
        if self.per_page != PER_PAGE {
            url.append_pair("per", &self.per_page.to_string());
        }
        url.append_pair("page", &page.to_string());
        format!("/instances?{}", url.finish())
    }
}

/// One page of the table.
#[derive(Debug)]
pub(crate) struct TablePage {
    pub rows: Vec<InstanceView>,
    /// Rows that pass the filters, on every page.
    pub matching: usize,
    pub page: usize,
    pub pages: usize,
}

fn health_rank(health: Health) -> u8 {
    match health {
        Health::Healthy => 0,
        Health::Unknown => 1,
        Health::Degraded => 2,
        Health::Unhealthy => 3,
        Health::Failed => 4,
    }
}

fn phase_rank(phase: Phase) -> usize {
    PHASES
        .iter()
        .position(|p| *p == phase)
        .unwrap_or(PHASES.len())
}

/// The page `query` asks for. `group_services`: the services of the group asked for (the
/// caller resolves it; `None` when no group is asked).
pub(crate) fn table_page(
    views: Vec<InstanceView>,
    query: &TableQuery,
    group_services: Option<&BTreeSet<String>>,
) -> TablePage {
    let search = query.search.as_ref().map(|search| search.to_lowercase());
    let mut rows: Vec<InstanceView> = views
        .into_iter()
        .filter(|view| {
            query
                .service
                .as_ref()
                .is_none_or(|service| view.service == *service)
                && group_services.is_none_or(|services| services.contains(&view.service))
                && query.phase.is_none_or(|phase| view.phase == phase)
                && search
                    .as_ref()
                    .is_none_or(|search| view.instance.to_string().contains(search.as_str()))
        })
        .collect();
    let usage = |view: &InstanceView, field: fn(&crate::observed::Usage) -> Option<u64>| {
        view.usage.as_ref().and_then(field).unwrap_or(0)
    };
    // Ties keep the key order (the views come sorted by key; the sort is stable).
    match query.sort {
        SortKey::Instance => {}
        SortKey::Phase => rows.sort_by_key(|view| phase_rank(view.phase)),
        SortKey::Health => rows.sort_by_key(|view| health_rank(view.health)),
        SortKey::Uptime => rows.sort_by_key(|view| view.uptime_secs.unwrap_or(0)),
        // A worker has none (it takes no traffic): first, as a missing value is.
        SortKey::Weight => rows.sort_by_key(|view| (!view.worker).then_some(view.weight)),
        SortKey::Restarts => rows.sort_by_key(|view| view.restarts),
        SortKey::Memory => rows.sort_by_key(|view| usage(view, |u| u.memory_bytes)),
        SortKey::Cpu => rows.sort_by_key(|view| usage(view, |u| u.cpu_usec)),
        SortKey::Disk => rows.sort_by_key(|view| usage(view, |u| u.storage_bytes)),
        SortKey::Wake => rows.sort_by_key(|view| view.last_wake_micros.unwrap_or(0)),
    }
    if query.descending {
        rows.reverse();
    }
    let matching = rows.len();
    let pages = matching.div_ceil(query.per_page).max(1);
    let page = query.page.min(pages);
    let start = (page - 1) * query.per_page;
    let rows = rows.into_iter().skip(start).take(query.per_page).collect();
    TablePage {
        rows,
        matching,
        page,
        pages,
    }
}

/// How many of `views` are in each phase (phases with none left out).
pub(crate) fn phase_counts(views: &[InstanceView]) -> Vec<(Phase, usize)> {
    PHASES
        .into_iter()
        .map(|phase| {
            let count = views.iter().filter(|view| view.phase == phase).count();
            (phase, count)
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::InstanceKey;

    fn view(key: &str, phase: Phase, restarts: u32) -> InstanceView {
        let instance = InstanceKey::parse(key).unwrap();
        InstanceView {
            service: instance.service.to_string(),
            id: instance.id.to_string(),
            instance,
            state: None,
            phase,
            pid: None,
            port: None,
            listen: None,
            health: Health::Unknown,
            weight: 100,
            worker: false,
            uptime_secs: None,
            restarts,
            last_exit: None,
            note: None,
            declared_in: None,
            usage: None,
            last_wake_micros: None,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn keys(page: &TablePage) -> Vec<String> {
        page.rows.iter().map(|v| v.instance.to_string()).collect()
    }

    fn sample() -> Vec<InstanceView> {
        vec![
            view("api:a", Phase::Running, 3),
            view("api:b", Phase::Stopped, 0),
            view("notes:a", Phase::Running, 1),
            view("notes:b", Phase::Failed, 7),
        ]
    }

    #[test]
    fn filters_by_service_group_phase_and_id() {
        let query = TableQuery::parse(&params(&[("service", "notes")]));
        assert_eq!(
            keys(&table_page(sample(), &query, None)),
            ["notes:a", "notes:b"]
        );
        let query = TableQuery::parse(&params(&[("phase", "running")]));
        assert_eq!(
            keys(&table_page(sample(), &query, None)),
            ["api:a", "notes:a"]
        );
        let group = BTreeSet::from(["api".to_string()]);
        let query = TableQuery::parse(&params(&[("group", "g")]));
        assert_eq!(
            keys(&table_page(sample(), &query, Some(&group))),
            ["api:a", "api:b"]
        );
        let query = TableQuery::parse(&params(&[("q", "S:B")]));
        assert_eq!(keys(&table_page(sample(), &query, None)), ["notes:b"]);
        let query = TableQuery::parse(&params(&[("phase", "nonsense")]));
        assert_eq!(table_page(sample(), &query, None).matching, 4, "ignored");
    }

    #[test]
    fn sorts_and_pages() {
        let query = TableQuery::parse(&params(&[("sort", "restarts"), ("desc", "1")]));
        assert_eq!(
            keys(&table_page(sample(), &query, None)),
            ["notes:b", "api:a", "notes:a", "api:b"]
        );
        let query = TableQuery::parse(&params(&[("per", "3"), ("page", "2")]));
        let page = table_page(sample(), &query, None);
        assert_eq!((page.page, page.pages, page.matching), (2, 2, 4));
        assert_eq!(keys(&page), ["notes:b"]);
        let query = TableQuery::parse(&params(&[("per", "3"), ("page", "9")]));
        assert_eq!(table_page(sample(), &query, None).page, 2, "the last page");
        let empty = table_page(Vec::new(), &TableQuery::default(), None);
        assert_eq!((empty.page, empty.pages, empty.matching), (1, 1, 0));
    }

    #[test]
    fn a_query_survives_its_url() {
        let query = TableQuery::parse(&params(&[
            ("service", "notes"),
            ("phase", "failed"),
            ("q", "a b"),
            ("per", "50"),
        ]));
        let url = query.to_url(3, Some((SortKey::Memory, true)));
        assert_eq!(
            url,
            "/instances?service=notes&phase=failed&q=a+b&sort=memory&desc=1&per=50&page=3"
        );
        let back: HashMap<String, String> =
            form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        let again = TableQuery::parse(&back);
        assert_eq!(again.service, query.service);
        assert_eq!(again.search, query.search);
        assert_eq!(
            (again.sort, again.descending, again.page),
            (SortKey::Memory, true, 3)
        );
    }

    #[test]
    fn counts_by_phase() {
        assert_eq!(
            phase_counts(&sample()),
            [(Phase::Running, 2), (Phase::Stopped, 1), (Phase::Failed, 1)]
        );
    }

    #[test]
    fn the_last_wake_sorts_as_a_number_and_none_first() {
        let mut slow = view("web:slow", Phase::Running, 0);
        slow.last_wake_micros = Some(90_000);
        let mut fast = view("web:fast", Phase::Running, 0);
        fast.last_wake_micros = Some(4_000);
        let never = view("web:never", Phase::Sleeping, 0);
        let query = TableQuery::parse(&params(&[("sort", "wake"), ("desc", "1")]));
        let page = table_page(vec![fast, never, slow], &query, None);
        assert_eq!(keys(&page), ["web:slow", "web:fast", "web:never"]);
    }

    /// A worker has no weight (it takes no traffic): by weight, it sorts as none, first.
    #[test]
    fn a_worker_sorts_by_weight_as_having_none() {
        let mut half = view("web:half", Phase::Running, 0);
        half.weight = 50;
        let full = view("web:full", Phase::Running, 0);
        let mut worker = view("queue:q", Phase::Running, 0);
        worker.worker = true;
        let query = TableQuery::parse(&params(&[("sort", "weight")]));
        let page = table_page(vec![full, worker, half], &query, None);
        assert_eq!(keys(&page), ["queue:q", "web:half", "web:full"]);
    }
}
