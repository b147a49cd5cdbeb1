//! Naming an interface by index or by name, and turning a name into an index.

use std::fmt;

use futures_util::TryStreamExt;
use rtnetlink::Handle;

use super::error::{NetlinkError, failure};

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the NUL).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// The interface an address or route lives on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Device {
    Index(u32),
    Name(String),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Index(index) => write!(f, "ifindex {index}"),
            Device::Name(name) => f.write_str(name),
        }
    }
}

impl From<&str> for Device {
    fn from(name: &str) -> Self {
        Device::Name(name.to_owned())
    }
}

impl From<u32> for Device {
    fn from(index: u32) -> Self {
        Device::Index(index)
    }
}

/// Checks a name against the kernel's rules before asking the kernel, so the
/// operator gets the reason rather than a bare `EINVAL`.
pub fn check_interface_name(name: &str) -> Result<(), NetlinkError> {
    let problem = if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_INTERFACE_NAME_LEN {
        Some("the name is longer than 15 bytes")
    } else if name.contains(['/', ' ', '\0']) || name == "." || name == ".." {
        Some("the name contains '/', a space or a NUL, or is '.' or '..'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(NetlinkError::InvalidSpec {
            what: format!("interface name {name:?}"),
            problem: problem.to_owned(),
            expected: "a Linux interface name of 1 to 15 bytes, such as eth1".to_owned(),
        }),
    }
}

/// The interface index of `device`; indices are taken as given (the kernel
/// rejects unknown ones with `ENODEV` on use).
pub async fn resolve(handle: &Handle, device: &Device) -> Result<u32, NetlinkError> {
    match device {
        Device::Index(index) => Ok(*index),
        Device::Name(name) => index_of(handle, name).await,
    }
}

/// The interface index of the interface called `name`.
pub async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetlinkError> {
    check_interface_name(name)?;
    let action = format!("looking up interface {name}");
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(NetlinkError::NoSuchInterface {
            action,
            device: name.to_owned(),
        }),
        Err(error) => Err(failure(error, &action, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(check_interface_name("eth1").is_ok());
        assert!(check_interface_name("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", "a/b", "a b", ".", ".."] {
            let error = check_interface_name(bad).unwrap_err();
            assert!(
                error.to_string().contains("1 to 15 bytes"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn devices_display_as_operators_write_them() {
        assert_eq!(Device::from("eth1").to_string(), "eth1");
        assert_eq!(Device::from(7).to_string(), "ifindex 7");
    }
}
