//! The dashboard's routes as data: a method and path become one [`Page`] (or none: 404).
//! Pure: no I/O.

use hyper::Method;

/// What a form posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Apply,
    Restart,
    Stop,
    Start,
    Weight,
}

/// Every address of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    /// `GET /`: the overview (an admin), the instance page (a tenant), else the login form.
    Overview,
    /// `GET /instances`
    Instances,
    /// `GET /instances/{S:ID}`: the key as the path has it (percent-encoded or not).
    Instance(String),
    /// `GET /assets/NAME`: the stylesheet and the script, public.
    Asset(&'static str),
    /// `GET /live/events`: the API's event stream for the session.
    LiveEvents,
    /// `GET /live/logs`: the API's log stream for the session.
    LiveLogs,
    /// `POST /login`
    Login,
    /// `POST /logout`
    Logout,
    /// `POST /actions/NAME`
    Act(Action),
}

pub(crate) const ASSETS: [&str; 2] = ["dash.css", "dash.js"];

impl Page {
    pub(crate) fn parse(method: &Method, path: &str) -> Option<Page> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let page = match (method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, [""]) => Page::Overview,
            (&Method::GET | &Method::HEAD, ["instances"]) => Page::Instances,
            (&Method::GET | &Method::HEAD, ["instances", key]) if !key.is_empty() => {
                Page::Instance(key.to_string())
            }
            (&Method::GET | &Method::HEAD, ["assets", name]) => {
                Page::Asset(ASSETS.into_iter().find(|asset| asset == name)?)
            }
            (&Method::GET, ["live", "events"]) => Page::LiveEvents,
            (&Method::GET, ["live", "logs"]) => Page::LiveLogs,
            (&Method::POST, ["login"]) => Page::Login,
            (&Method::POST, ["logout"]) => Page::Logout,
            (&Method::POST, ["actions", action]) => Page::Act(match *action {
                "apply" => Action::Apply,
                "restart" => Action::Restart,
                "stop" => Action::Stop,
                "start" => Action::Start,
                "weight" => Action::Weight,
                _ => return None,
            }),
            _ => return None,
        };
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_has_its_page() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(Page::parse(&get, "/"), Some(Page::Overview));
        assert_eq!(Page::parse(&get, "/instances"), Some(Page::Instances));
        assert_eq!(
            Page::parse(&get, "/instances/notes%3Aalice"),
            Some(Page::Instance("notes%3Aalice".into()))
        );
        assert_eq!(
            Page::parse(&get, "/assets/dash.css"),
            Some(Page::Asset("dash.css"))
        );
        assert_eq!(Page::parse(&get, "/assets/other.js"), None);
        assert_eq!(Page::parse(&get, "/live/events"), Some(Page::LiveEvents));
        assert_eq!(Page::parse(&post, "/login"), Some(Page::Login));
        assert_eq!(Page::parse(&post, "/logout"), Some(Page::Logout));
        assert_eq!(
            Page::parse(&post, "/actions/restart"),
            Some(Page::Act(Action::Restart))
        );
        assert_eq!(Page::parse(&post, "/actions/destroy"), None);
        assert_eq!(
            Page::parse(&get, "/actions/restart"),
            None,
            "actions are POSTs"
        );
        assert_eq!(Page::parse(&post, "/"), None);
        assert_eq!(Page::parse(&get, "/login"), None);
    }
}
