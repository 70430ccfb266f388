//! amqprs plumbing: connection/channel callbacks that report closes, and a publisher with
//! publisher confirms (a publish is done when the broker acked it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{BasicPublishArguments, Channel};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::RpcError;

type AmqpResult<T> = Result<T, amqprs::error::Error>;

/// AMQP reply code for ACCESS_REFUSED.
pub(crate) const ACCESS_REFUSED: u16 = 403;

/// Last close reason received from the broker on a channel or connection.
pub(crate) type CloseInfo = Arc<Mutex<Option<(u16, String)>>>;

/// Reports the broker closing the connection by cancelling `lost`.
pub(crate) struct ConnCallback {
    pub(crate) lost: CancellationToken,
}

#[async_trait]
impl ConnectionCallback for ConnCallback {
    async fn close(&mut self, _connection: &Connection, close: Close) -> AmqpResult<()> {
        tracing::warn!(code = close.reply_code(), reason = %close.reply_text(), "broker closed the AMQP connection");
        self.lost.cancel();
        Ok(())
    }
    async fn blocked(&mut self, _connection: &Connection, reason: String) {
        tracing::warn!(%reason, "broker blocked the AMQP connection");
    }
    async fn unblocked(&mut self, _connection: &Connection) {
        tracing::info!("broker unblocked the AMQP connection");
    }
    async fn secret_updated(&mut self, _connection: &Connection) {}
}

/// Outstanding publisher confirms of one channel, by delivery tag.
#[derive(Default)]
pub(crate) struct ConfirmState {
    next_tag: u64,
    pending: BTreeMap<u64, oneshot::Sender<bool>>,
}

impl ConfirmState {
    fn settle(&mut self, tag: u64, multiple: bool, ok: bool) {
        if multiple {
            let rest = self.pending.split_off(&(tag + 1));
            for (_, tx) in std::mem::replace(&mut self.pending, rest) {
                let _ = tx.send(ok);
            }
        } else if let Some(tx) = self.pending.remove(&tag) {
            let _ = tx.send(ok);
        }
    }
}

/// Channel callback: records close reasons, settles confirms, optionally reports loss.
pub(crate) struct ChanCallback {
    pub(crate) close_info: CloseInfo,
    pub(crate) confirms: Option<Arc<Mutex<ConfirmState>>>,
    /// Cancelled when this channel closes unexpectedly (publisher/reply channels only:
    /// losing them means the connection must be rebuilt).
    pub(crate) lost: Option<CancellationToken>,
}

#[async_trait]
impl ChannelCallback for ChanCallback {
    async fn close(&mut self, channel: &Channel, close: CloseChannel) -> AmqpResult<()> {
        tracing::debug!(channel = channel.channel_id(), code = close.reply_code(), reason = %close.reply_text(), "broker closed an AMQP channel");
        *self.close_info.lock().expect("close info lock") =
            Some((close.reply_code(), close.reply_text().clone()));
        if let Some(c) = &self.confirms {
            c.lock().expect("confirm lock").pending.clear();
        }
        if let Some(l) = &self.lost {
            l.cancel();
        }
        Ok(())
    }
    async fn cancel(&mut self, _channel: &Channel, _cancel: Cancel) -> AmqpResult<()> {
        tracing::warn!("broker cancelled a consumer (queue deleted?)");
        if let Some(l) = &self.lost {
            l.cancel();
        }
        Ok(())
    }
    async fn flow(&mut self, _channel: &Channel, active: bool) -> AmqpResult<bool> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        if let Some(c) = &self.confirms {
            c.lock()
                .expect("confirm lock")
                .settle(ack.delivery_tag(), ack.mutiple(), true);
        }
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        if let Some(c) = &self.confirms {
            c.lock()
                .expect("confirm lock")
                .settle(nack.delivery_tag(), nack.multiple(), false);
        }
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _props: BasicProperties,
        _content: Vec<u8>,
    ) {
        tracing::debug!(routing_key = %ret.routing_key(), code = ret.reply_code(), "broker returned an unroutable message");
    }
}

/// Maps an amqprs error to an [`RpcError`], using the broker's close reason if one came.
pub(crate) async fn map_err(e: amqprs::error::Error, info: &CloseInfo, what: &str) -> RpcError {
    // The close callback may run just after the failed request returns.
    for _ in 0..10 {
        if info.lock().expect("close info lock").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    match info.lock().expect("close info lock").clone() {
        Some((ACCESS_REFUSED, text)) => RpcError::AccessRefused(format!("{what}: {text}")),
        Some((code, text)) => {
            RpcError::Unavailable(format!("{what}: broker closed the channel ({code} {text})"))
        }
        None => RpcError::Unavailable(format!("{what}: {e}")),
    }
}

/// A channel in confirm mode. Publishes are serialized so delivery tags match.
pub(crate) struct Publisher {
    pub(crate) channel: Channel,
    confirms: Arc<Mutex<ConfirmState>>,
    /// Keeps tag assignment and the publish frame in the same order.
    order: tokio::sync::Mutex<()>,
}

impl Publisher {
    pub(crate) fn new(channel: Channel, confirms: Arc<Mutex<ConfirmState>>) -> Self {
        Self {
            channel,
            confirms,
            order: tokio::sync::Mutex::new(()),
        }
    }

    /// Publishes and returns a receiver that yields the broker's ack (`true`) or nack.
    /// The receiver errs if the channel closes first.
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
        props: BasicProperties,
        mandatory: bool,
    ) -> Result<oneshot::Receiver<bool>, RpcError> {
        let _order = self.order.lock().await;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.confirms.lock().expect("confirm lock");
            st.next_tag += 1;
            let tag = st.next_tag;
            st.pending.insert(tag, tx);
        }
        let mut args = BasicPublishArguments::new(exchange, routing_key);
        args.mandatory(mandatory);
        self.channel
            .basic_publish(props, body, args.finish())
            .await
            .map_err(|e| RpcError::Unavailable(format!("publish failed: {e}")))?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_settlement_single_and_multiple() {
        let mut st = ConfirmState::default();
        let mut rxs = Vec::new();
        for t in 1..=5 {
            let (tx, rx) = oneshot::channel();
            st.pending.insert(t, tx);
            rxs.push(rx);
        }
        st.settle(2, false, true);
        st.settle(4, true, false);
        assert_eq!(st.pending.len(), 1);
        let got: Vec<_> = rxs.into_iter().map(|mut r| r.try_recv().ok()).collect();
        assert_eq!(
            got,
            vec![Some(false), Some(true), Some(false), Some(false), None]
        );
    }
}
