//! RPC for Trove services, speaking oslo.messaging's wire format.
//!
//! Map of the crate:
//! * [`transport`]: the [`Transport`] trait (call / cast / serve) and [`RpcClient`];
//! * [`amqp`]: the RabbitMQ transport (oslo.messaging's exchanges, queues, envelope,
//!   replies, reconnection with back-off, publisher confirms);
//! * [`memory`]: the in-process transport with the same semantics;
//! * [`message`]: envelope, request/reply layout, versions, targets;
//! * [`server`]: dispatch rules, [`Dispatcher`] (what a service implements), [`RpcEndpoint`];
//! * [`serializer`]: Trove's RPC encryption styles (plain, per-key, guest->conductor);
//! * [`context`]: the request context carried as `_context_*` keys;
//! * [`api`]: typed clients `TaskManagerApi`, `GuestApi`, `ConductorApi`;
//! * [`admin`]: per-guest RabbitMQ users through the management HTTP API;
//! * [`testing`]: the lock that keeps RabbitMQ tests away from the broker-restart test.
//!
//! The crate reads no configuration: services pass plain values (URL, exchange, keys,
//! timeouts) into the constructors.

pub mod admin;
pub mod amqp;
pub mod api;
pub mod context;
pub mod error;
pub mod memory;
pub mod message;
pub mod serializer;
pub mod server;
pub mod testing;
pub mod transport;

pub use admin::{BrokerAdmin, GuestBrokerAccess, GuestCredentials};
pub use amqp::{AmqpOptions, AmqpTransport, TransportUrl};
pub use context::RpcContext;
pub use error::{RemoteError, RpcError};
pub use memory::InMemoryTransport;
pub use message::{Target, Version};
pub use serializer::{
    CachingKeyLookup, ConductorGuestSerializer, ConductorHostSerializer, InstanceKeyLookup,
    PlainSerializer, SecureSerializer, Serializer, StaticKeyLookup,
};
pub use server::{
    decode_args, encode_result, Dispatcher, MessageHandler, RpcEndpoint, ServerHandle,
};
pub use transport::{to_args, RpcClient, Transport};
