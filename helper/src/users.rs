//! User and group names from the configs, resolved through NSS (getpwnam/getgrnam).

use nix::unistd::{Gid, Group, Uid, User};

/// Accepts a name or a numeric id, as FPM and Apache (`#123`) do.
pub fn user(name: &str) -> Result<User, String> {
    let n = name.trim().trim_start_matches('#');
    let found = if let Ok(id) = n.parse::<u32>() { User::from_uid(Uid::from_raw(id)) } else { User::from_name(n) };
    match found {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(format!("user `{name}` does not exist")),
        Err(e) => Err(format!("cannot look up user `{name}`: {e}")),
    }
}

pub fn group(name: &str) -> Result<Group, String> {
    let n = name.trim().trim_start_matches('#');
    let found = if let Ok(id) = n.parse::<u32>() { Group::from_gid(Gid::from_raw(id)) } else { Group::from_name(n) };
    match found {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(format!("group `{name}` does not exist")),
        Err(e) => Err(format!("cannot look up group `{name}`: {e}")),
    }
}

pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

pub fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// Who a process runs as, for "could Apache reach this?" questions.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Identity {
    pub fn new(user_name: &str, group_name: Option<&str>) -> Result<Identity, String> {
        let u = user(user_name)?;
        let primary = match group_name {
            Some(g) => group(g)?.gid,
            None => u.gid,
        };
        let mut gids = vec![primary.as_raw()];
        if let Ok(cname) = std::ffi::CString::new(u.name.clone()) {
            if let Ok(list) = nix::unistd::getgrouplist(&cname, primary) {
                gids.extend(list.into_iter().map(|g| g.as_raw()));
            }
        }
        gids.sort_unstable();
        gids.dedup();
        Ok(Identity { name: u.name, uid: u.uid.as_raw(), gids })
    }

    /// The classic owner/group/other check (ACLs are not consulted).
    /// `want` is a mask of r=4, w=2, x=1.
    pub fn may(&self, mode: u32, uid: u32, gid: u32, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let bits = if self.uid == uid {
            (mode >> 6) & 7
        } else if self.gids.contains(&gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & want == want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(user("root").unwrap().uid.as_raw(), 0);
        assert_eq!(user("0").unwrap().name, "root");
        assert_eq!(group("root").unwrap().gid.as_raw(), 0);
        let e = user("no-such-user-fcgi").unwrap_err();
        assert!(e.contains("`no-such-user-fcgi` does not exist"), "{e}");
        assert!(group("no-such-group-fcgi").is_err());
    }

    #[test]
    fn permission_classes() {
        let id = Identity { name: "x".into(), uid: 33, gids: vec![33, 100] };
        assert!(id.may(0o700, 33, 0, 7));
        assert!(!id.may(0o070, 33, 33, 1), "owner class wins even if group would allow");
        assert!(id.may(0o750, 0, 100, 5));
        assert!(!id.may(0o750, 0, 0, 1));
        assert!(id.may(0o751, 0, 0, 1));
        let root = Identity { name: "root".into(), uid: 0, gids: vec![0] };
        assert!(root.may(0, 1, 1, 7));
    }
}
