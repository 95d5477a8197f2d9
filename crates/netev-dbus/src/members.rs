//! The members a `#[zbus::proxy]` trait declares, with the D-Bus signatures
//! the compiler gives their Rust types: what the test in `proxy_check.rs`
//! compares with `dist/dbus/org.netev.Daemon1.xml`.
//!
//! zbus generates no introspection data for a proxy, so the list is taken
//! from the trait's own tokens: [`proxy_with_members!`] emits the trait
//! unchanged for `#[zbus::proxy]`, and, in test builds, a function listing
//! every item of it. Nothing is written twice: a method added to the trait
//! is in the list, with the signatures of its argument and return types
//! (`<T as zbus::Type>::SIGNATURE`, what zbus puts on the wire).

/// Emits the trait (`$(#[attr])* trait Name { items }`) token for token as
/// written, plus (in test builds) `fn $list() -> Vec<Member>` with one
/// entry per item. The trait passes through as plain tokens, not taken
/// apart and put together again: `self` in zbus's generated code must have
/// the hygiene of the `&self` it was given.
macro_rules! proxy_with_members {
    (members: $list:ident; $($trait:tt)*) => {
        $($trait)*

        #[cfg(test)]
        fn $list() -> Vec<$crate::members::Member> {
            $crate::members::trait_members!($($trait)*)
        }
    };
}
pub(crate) use proxy_with_members;

/// What a trait item is on the bus.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A method call (`#[zbus(no_reply)]` included).
    Method,
    /// `#[zbus(signal)]`.
    Signal,
    /// `#[zbus(property)]` (a getter).
    Property,
}

/// One item of a proxy trait.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Method, signal or property.
    pub kind: Kind,
    /// The Rust name (`get_status`); zbus names it on the bus in
    /// PascalCase (`GetStatus`).
    pub rust_name: &'static str,
    /// The signature of each argument after `&self`, in order.
    pub args: Vec<zbus::Signature>,
    /// The signature of `T` in the item's `zbus::Result<T>`.
    pub ret: zbus::Signature,
}

/// `zbus::Result<T>` → `T`, so that the macro need not take the return
/// type apart.
#[cfg(test)]
pub(crate) trait ZbusResult {
    type Ok;
}

#[cfg(test)]
impl<T> ZbusResult for zbus::Result<T> {
    type Ok = T;
}

/// `vec![Member, …]`, one for each item of the trait.
#[cfg(test)]
macro_rules! trait_members {
    ($(#[$($attr:tt)*])* $vis:vis trait $name:ident { $($items:tt)* }) => {
        $crate::members::proxy_members!([] $($items)*)
    };
}
#[cfg(test)]
pub(crate) use trait_members;

/// `vec![Member, …]` for the `fn` items, gathered in `[…]` one by one.
#[cfg(test)]
macro_rules! proxy_members {
    ([$($done:expr,)*]) => {
        vec![$($done),*]
    };
    (
        [$($done:expr,)*]
        $(#[$($attr:tt)*])*
        fn $fn:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty;
        $($rest:tt)*
    ) => {
        $crate::members::proxy_members!(
            [$($done,)* $crate::members::Member {
                kind: $crate::members::member_kind!($([$($attr)*])*),
                rust_name: stringify!($fn),
                args: vec![$(<$ty as zbus::Type>::SIGNATURE.clone()),*],
                ret: <<$ret as $crate::members::ZbusResult>::Ok as zbus::Type>::SIGNATURE.clone(),
            },]
            $($rest)*
        )
    };
}
#[cfg(test)]
pub(crate) use proxy_members;

/// The [`Kind`] an item's attributes give it. An attribute this does not
/// know (a `#[zbus(name = …)]` renaming a member, say) stops the build
/// rather than being checked wrongly.
#[cfg(test)]
macro_rules! member_kind {
    () => {
        $crate::members::Kind::Method
    };
    ([zbus(signal)] $($rest:tt)*) => {
        $crate::members::Kind::Signal
    };
    ([zbus(property $($p:tt)*)] $($rest:tt)*) => {
        $crate::members::Kind::Property
    };
    ([zbus(no_reply)] $($rest:tt)*) => {
        $crate::members::member_kind!($($rest)*)
    };
    // a flag on the call, not part of its signature
    ([zbus(allow_interactive_auth)] $($rest:tt)*) => {
        $crate::members::member_kind!($($rest)*)
    };
    ([doc $($d:tt)*] $($rest:tt)*) => {
        $crate::members::member_kind!($($rest)*)
    };
    ([$($other:tt)*] $($rest:tt)*) => {
        compile_error!(concat!(
            "the proxy check (members.rs) does not know #[",
            stringify!($($other)*),
            "]: teach it"
        ))
    };
}
#[cfg(test)]
pub(crate) use member_kind;
