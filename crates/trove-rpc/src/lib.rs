//! RPC over oslo.messaging's wire format: Transport trait, AMQP and in-memory transports, Trove's RPC encryption, typed TaskManager/Guest/Conductor APIs.
