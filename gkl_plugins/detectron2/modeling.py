"""A Faster R-CNN student whose box classifier is distilled from a frozen teacher with GKL."""
import logging
import os
from typing import Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, build_model
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from ..core import GKLLoss
from .config import build_gkl_loss, check_softmax_box_head, get_teacher_cfg

__all__ = ['GKLDistillationRCNN']

logger = logging.getLogger(__name__)
_TEACHER = 'teacher'


def _check_box_branch(model: nn.Module, role: str) -> None:
    roi_heads = getattr(model, 'roi_heads', None)
    if not isinstance(roi_heads, StandardROIHeads) or not isinstance(
            getattr(roi_heads, 'box_predictor', None), FastRCNNOutputLayers):
        raise ValueError(
            f'the {role} must have StandardROIHeads with a single FastRCNNOutputLayers box '
            f'predictor (e.g. Faster R-CNN with FPN), got {type(roi_heads).__name__}; cascade '
            'and C4 (Res5ROIHeads) heads are not supported by GKL distillation')


@META_ARCH_REGISTRY.register()
class GKLDistillationRCNN(GeneralizedRCNN):
    """Faster R-CNN student trained with an extra GKL loss against a frozen teacher.

    In training, the student samples its proposals as usual; the teacher then runs its own
    backbone on the same images and its box head on exactly those proposals, and the GKL
    loss (:class:`gkl_plugins.core.GKLLoss`) compares the two ``(R, K+1)`` class logits
    (background last). Its two parts are added to the usual losses as ``loss_gkl_mse`` and
    ``loss_gkl_ce``. Proposals labelled ``-1`` are left out; with ``MODEL.GKL.USE_PRIOR``
    the class prior is over the K + 1 classes, with each proposal's ``gt_classes`` as label.
    Inference is the plain student's.

    The teacher is built from ``MODEL.GKL.TEACHER.CONFIG_FILE``, loaded from
    ``MODEL.GKL.TEACHER.WEIGHTS``, frozen (``requires_grad=False``, so detectron2's
    optimizer builder leaves it out) and kept in eval mode, also after ``model.train()``.

    Note:
        The teacher is not part of this model's ``state_dict``: checkpoints hold the student
        and the GKL state (the class prior) only, so they load into the plain student
        architecture, and loading one never overwrites the teacher (teacher entries in a
        checkpoint are ignored). The teacher always comes from ``TEACHER.WEIGHTS``, which
        must therefore stay available to resume a run. Mask and keypoint heads are passed
        through to detectron2 (not covered by this package's tests); cascade, C4 and
        ``TRAIN_ON_PRED_BOXES`` heads are not supported, and neither are sigmoid or
        federated box classifiers (no K + 1 softmax to distil).
    """

    @configurable
    def __init__(self, *, teacher: GeneralizedRCNN, gkl_loss: GKLLoss, **kwargs):
        """
        Args:
            teacher (GeneralizedRCNN): The teacher detector; it is frozen here.
            gkl_loss (GKLLoss): The loss on the box classifier logits.
            **kwargs: The arguments of :class:`GeneralizedRCNN`.
        """
        super().__init__(**kwargs)
        _check_box_branch(self, 'student')
        _check_box_branch(teacher, 'teacher')
        if self.roi_heads.train_on_pred_boxes:
            raise ValueError('MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES is not supported with GKL '
                             'distillation: set it to False')
        student_classes = self.roi_heads.box_predictor.num_classes
        teacher_classes = teacher.roi_heads.box_predictor.num_classes
        if student_classes != teacher_classes:
            raise ValueError(
                f'the student predicts {student_classes} classes and the teacher '
                f'{teacher_classes}: set the same MODEL.ROI_HEADS.NUM_CLASSES in both configs')
        prior = gkl_loss.prior
        if prior is not None and prior.num_classes != student_classes + 1:
            raise ValueError(f'the GKL prior must cover the {student_classes} classes and the '
                             f'background, got {prior.num_classes} classes')

        teacher.requires_grad_(False)
        teacher.eval()
        self.teacher = teacher
        self.gkl_loss = gkl_loss
        self._teacher_prefix = _TEACHER + '.'
        self._register_state_dict_hook(_drop_teacher_entries)
        self._register_load_state_dict_pre_hook(_skip_teacher_entries, with_module=True)
        self.register_load_state_dict_post_hook(_forget_missing_teacher_keys)

    @classmethod
    def from_config(cls, cfg):
        check_softmax_box_head(cfg, role='student')
        teacher_cfg = get_teacher_cfg(cfg)
        check_softmax_box_head(teacher_cfg, role='teacher')
        if teacher_cfg.MODEL.META_ARCHITECTURE == cls.__name__:
            raise ValueError(f'the teacher config uses META_ARCHITECTURE {cls.__name__}: give '
                             'the teacher a plain detector config such as GeneralizedRCNN')

        ret = super().from_config(cfg)
        teacher = build_model(teacher_cfg)
        weights = teacher_cfg.MODEL.WEIGHTS
        if weights:
            if '://' not in weights and not os.path.isfile(weights):
                raise ValueError(
                    f'the teacher weights {weights!r} (MODEL.GKL.TEACHER.WEIGHTS) do not '
                    'exist: train the teacher first (e.g. gkl-d2-train --config-file '
                    'configs/detectron2/faster_rcnn_R50_FPN_teacher.yaml) or point the key at '
                    'its checkpoint')
            DetectionCheckpointer(teacher).load(weights)
        else:
            logger.warning('MODEL.GKL.TEACHER.WEIGHTS is empty: distilling from a randomly '
                           'initialised teacher, which is only useful for testing')
        ret['teacher'] = teacher
        ret['gkl_loss'] = build_gkl_loss(cfg, cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1)
        return ret

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, batched_inputs: List[Dict]):
        """As :meth:`GeneralizedRCNN.forward`; in training the loss dict also holds
        ``loss_gkl_mse`` and ``loss_gkl_ce``."""
        if not self.training:
            return self.inference(batched_inputs)

        images = self.preprocess_image(batched_inputs)
        gt_instances = [x['instances'].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        if self.proposal_generator is not None:
            proposals, losses = self.proposal_generator(images, features, gt_instances)
        else:
            proposals = [x['proposals'].to(self.device) for x in batched_inputs]
            losses = {}
        if self.vis_period > 0 and get_event_storage().iter % self.vis_period == 0:
            self.visualize_training(batched_inputs, proposals)

        # Sampling once and running the box branch here (rather than through roi_heads'
        # forward) gives the student logits on the very proposals the teacher will see.
        heads = self.roi_heads
        proposals = heads.label_and_sample_proposals(proposals, gt_instances)
        box_features = heads.box_pooler([features[f] for f in heads.box_in_features],
                                        [p.proposal_boxes for p in proposals])
        predictions = heads.box_predictor(heads.box_head(box_features))
        losses.update(heads.box_predictor.losses(predictions, proposals))
        if heads.mask_on:
            losses.update(heads._forward_mask(features, proposals))
        if heads.keypoint_on:
            losses.update(heads._forward_keypoint(features, proposals))

        losses.update(self.distillation_losses(batched_inputs, proposals, predictions[0]))
        return losses

    def distillation_losses(self, batched_inputs: List[Dict], proposals: List[Instances],
                            pred_class_logits: Tensor) -> Dict[str, Tensor]:
        """The GKL loss between the student's and the teacher's box classifier logits.

        Args:
            batched_inputs (list[dict]): The inputs, as given to :meth:`forward`.
            proposals (list[Instances]): Sampled proposals with ``proposal_boxes`` and
                ``gt_classes`` (``K`` for background, ``-1`` for ignored).
            pred_class_logits (Tensor): ``(R, K+1)`` student logits on these proposals.

        Returns:
            dict[str, Tensor]: ``loss_gkl_mse`` and ``loss_gkl_ce``, zero when no proposal
            is left.
        """
        gt_classes = cat([p.gt_classes for p in proposals], dim=0)
        keep = gt_classes >= 0
        if not bool(keep.any()):
            # Nothing to distil (no proposal sampled): zeros that keep the graph connected,
            # as detectron2's own losses do for empty inputs.
            zero = pred_class_logits.sum() * 0.0
            return {'loss_gkl_mse': zero, 'loss_gkl_ce': zero.clone()}
        teacher_logits = self.teacher_box_logits(batched_inputs, proposals)
        out = self.gkl_loss(pred_class_logits[keep], teacher_logits[keep], gt_classes[keep],
                            return_parts=True)
        return {'loss_gkl_mse': out.mse, 'loss_gkl_ce': out.ce}

    @torch.no_grad()
    def teacher_box_logits(self, batched_inputs: List[Dict],
                           proposals: List[Instances]) -> Tensor:
        """The teacher's ``(R, K+1)`` class logits on the given proposals.

        The teacher normalises and pads the images itself (its own pixel statistics and
        size divisibility); boxes are in input image coordinates, so they apply unchanged.
        """
        teacher = self.teacher
        images = teacher.preprocess_image(batched_inputs)
        features = teacher.backbone(images.tensor)
        heads = teacher.roi_heads
        box_features = heads.box_pooler([features[f] for f in heads.box_in_features],
                                        [p.proposal_boxes for p in proposals])
        scores, _ = heads.box_predictor(heads.box_head(box_features))
        return scores


def _drop_teacher_entries(module, state_dict, prefix, local_metadata):
    teacher_prefix = prefix + _TEACHER + '.'
    for key in [k for k in state_dict if k.startswith(teacher_prefix)]:
        del state_dict[key]
    return state_dict


def _skip_teacher_entries(module, state_dict, prefix, local_metadata, strict, missing_keys,
                          unexpected_keys, error_msgs):
    module._teacher_prefix = prefix + _TEACHER + '.'
    skipped = [k for k in state_dict if k.startswith(module._teacher_prefix)]
    for key in skipped:
        del state_dict[key]
    if skipped:
        logger.info('Ignored %d teacher entries of the checkpoint: the teacher is loaded from '
                    'MODEL.GKL.TEACHER.WEIGHTS only', len(skipped))


def _forget_missing_teacher_keys(module, incompatible_keys):
    incompatible_keys.missing_keys[:] = [
        k for k in incompatible_keys.missing_keys if not k.startswith(module._teacher_prefix)]
