//! Our kernels as differentiable operations of Burn's autodiff on the Flex backend (training),
//! registered through burn-autodiff's public `Backward` API the way Burn registers its own ops:
//! - convolution: forward [`conv::dense`] / [`conv::depthwise_conv`], backward
//!   [`conv::input_grad`], [`conv::weight_grad`] and [`conv::bias_grad`] (burn-flex's conv and
//!   its backward, im2col + per-tile gemms and transposed convs, were most of a training step);
//! - SiLU: our vectorised forward, and a backward that recomputes the sigmoid the same way
//!   (Burn's runs libm `expf` per value, twice).

use burn_autodiff::Autodiff;
use burn_autodiff::NodeId;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::tensor::FloatTensor;
use burn_dispatch::GradientCheckpointingStrategy;
use burn_flex::{Flex, FlexTensor};

use super::conv::{self, ConvShape};
use super::simd::{self, Unary};
use super::{Level, new_flex, values};

/// An autodiff tensor of the Flex backend.
pub type AdTensor = FloatTensor<Autodiff<Flex>>;

/// What the backward pass needs besides the saved input and weight.
#[derive(Debug, Clone, Copy)]
pub struct ConvMeta {
    pub shape: ConvShape,
    pub depthwise: bool,
}

impl ConvMeta {
    pub fn forward(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        if self.depthwise {
            conv::depthwise_conv(Level::detected(), x, w, b, &self.shape)
        } else {
            conv::dense(x, w, b, &self.shape)
        }
    }
}

#[derive(Debug)]
struct ConvBias;
#[derive(Debug)]
struct ConvNoBias;

type State = (NodeId, NodeId, ConvMeta);

/// Contiguous values of a saved or incoming f32 tensor.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// Registers the gradients of the parents that want one: `[x, weight, bias]` (`bias` absent
/// for a conv without one).
fn conv_backward(
    ids: [Option<NodeId>; 3],
    grad: FlexTensor,
    state: State,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    let (x_state, w_state, meta) = state;
    let s = &meta.shape;
    let dy = contiguous(grad);
    let dyv = values(&dy);
    let [xid, wid, bid] = ids;
    if let Some(id) = xid {
        let w = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(w_state));
        let dx = conv::input_grad(Level::detected(), values(&w), dyv, s, meta.depthwise);
        grads.register::<Flex>(id, new_flex(dx, [s.b, s.cin, s.h, s.w].into()));
    }
    if let Some(id) = wid {
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let dw = conv::weight_grad(Level::detected(), values(&x), dyv, s, meta.depthwise);
        let cpg = if meta.depthwise { 1 } else { s.cin };
        grads.register::<Flex>(id, new_flex(dw, [s.cout, cpg, s.k, s.k].into()));
    }
    if let Some(id) = bid {
        let plane = dyv.len() / (s.b * s.cout).max(1);
        grads.register::<Flex>(
            id,
            new_flex(
                conv::bias_grad(Level::detected(), dyv, s.b, s.cout, plane),
                [s.cout].into(),
            ),
        );
    }
}

impl Backward<Flex, 3> for ConvBias {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let ids = ops.parents.map(|p| p.map(|n| n.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_backward(ids, grad, ops.state, grads, checkpointer);
    }
}

impl Backward<Flex, 2> for ConvNoBias {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|p| p.map(|n| n.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_backward([x, w, None], grad, ops.state, grads, checkpointer);
    }
}

/// The convolution of autodiff tensors (contiguous f32 primitives, checked by the caller).
pub fn conv(
    strategy: GradientCheckpointingStrategy,
    x: AdTensor,
    w: AdTensor,
    b: Option<AdTensor>,
    meta: ConvMeta,
) -> AdTensor {
    match strategy {
        GradientCheckpointingStrategy::Balanced => {
            conv_with::<BalancedCheckpointing>(x, w, b, meta)
        }
        GradientCheckpointingStrategy::Disabled => conv_with::<NoCheckpointing>(x, w, b, meta),
    }
}

fn conv_with<C: CheckpointStrategy>(
    x: AdTensor,
    w: AdTensor,
    b: Option<AdTensor>,
    meta: ConvMeta,
) -> AdTensor {
    let s = &meta.shape;
    let (oh, ow) = s.out_hw().unwrap_or((0, 0));
    let out_shape = [s.b, s.cout, oh, ow];
    let run = |x: &AdTensor, w: &AdTensor, b: Option<&AdTensor>| {
        let out = meta.forward(
            values(x.primitive()),
            values(w.primitive()),
            b.map(|b| values(b.primitive())),
        );
        new_flex(out, out_shape.into())
    };
    match b {
        Some(b) => match ConvBias
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let ws = prep.checkpoint(&w);
                let out = run(&x, &w, Some(&b));
                prep.finish((xs, ws, meta), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(&x, &w, Some(&b))),
        },
        None => match ConvNoBias
            .prepare::<C>([x.node(), w.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let ws = prep.checkpoint(&w);
                let out = run(&x, &w, None);
                prep.finish((xs, ws, meta), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(&x, &w, None)),
        },
    }
}

#[derive(Debug)]
struct Silu;

impl Backward<Flex, 1> for Silu {
    type State = NodeId;

    fn backward(self, ops: Ops<NodeId, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = parent {
            let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(ops.state));
            let dy = contiguous(grad);
            let dx = simd::silu_grad(Level::detected(), values(&x), values(&dy));
            grads.register::<Flex>(node.id, new_flex(dx, x.layout().shape().clone()));
        }
    }
}

/// SiLU of an autodiff tensor (a contiguous f32 primitive, checked by the caller).
pub fn silu(strategy: GradientCheckpointingStrategy, x: AdTensor) -> AdTensor {
    match strategy {
        GradientCheckpointingStrategy::Balanced => silu_with::<BalancedCheckpointing>(x),
        GradientCheckpointingStrategy::Disabled => silu_with::<NoCheckpointing>(x),
    }
}

fn silu_with<C: CheckpointStrategy>(x: AdTensor) -> AdTensor {
    let run = |x: &AdTensor| {
        let src = values(x.primitive());
        let mut out = vec![0.0f32; src.len()];
        simd::map_par_into(Level::detected(), Unary::Silu, src, &mut out);
        new_flex(out, x.primitive().layout().shape().clone())
    };
    match Silu.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = prep.checkpoint(&x);
            let out = run(&x);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(run(&x)),
    }
}
