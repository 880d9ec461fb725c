"""Linear models and scalers of scikit-learn as plain NumPy, so serving them needs no scikit-learn.

A fitted linear model is its coefficients: ``x @ coef.T + intercept`` is what scikit-learn
computes for ``decision_function`` (and ``predict`` of a regressor); classifiers take the
arg-max (or the sign for two classes), and logistic regression turns the scores into
probabilities with a softmax or one sigmoid per class (which one is fixed by comparing with
scikit-learn, see ``compiled.compile_model``). Standard and min-max scalers in front of the
model become the same element-wise operations scikit-learn applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

Array = np.ndarray[Any, Any]
CLASSIFIERS = ("LogisticRegression", "RidgeClassifier", "LinearSVC", "SGDClassifier", "Perceptron")
REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "LinearSVR", "SGDRegressor")
LINKS = ("softmax", "sigmoid")  # how LogisticRegression turns scores into probabilities


@dataclass
class CompiledLinear:
    coef: Array
    intercept: Array
    classes: Array | None
    link: str = ""  # "" when the model has no predict_proba

    kind: ClassVar[str] = "linear"

    @classmethod
    def of(cls, model: Any, link: str = "") -> CompiledLinear:
        name = type(model).__name__
        if name not in CLASSIFIERS + REGRESSORS:
            raise ValueError(f"{name} is not a linear model that can be compiled")
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(getattr(model, "intercept_", 0.0), dtype=np.float64)
        classes = np.asarray(model.classes_) if name in CLASSIFIERS else None
        return cls(coef, intercept, classes, link if name == "LogisticRegression" else "")

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.classes is None:
            return ("predict",)
        return ("predict", "decision_function") + (("predict_proba",) if self.link else ())

    def decision_function(self, x: Array) -> Array:
        scores: Array = np.asarray(x, dtype=np.float64) @ self.coef.T + self.intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def predict(self, x: Array) -> Array:
        scores = self.decision_function(x)
        if self.classes is None:
            return scores
        index = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        result: Array = self.classes.take(index, axis=0)
        return result

    def predict_proba(self, x: Array) -> Array:
        scores = self.decision_function(x)
        if self.link == "softmax":
            if scores.ndim == 1:
                scores = np.column_stack([-scores, scores])
            scores = scores - scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            softmax: Array = scores
            return softmax
        prob: Array = 1.0 / (1.0 + np.exp(-scores))
        if prob.ndim == 1:
            return np.column_stack([1 - prob, prob])
        total = prob.sum(axis=1)
        zero = total == 0
        prob[zero, :] = 1
        total[zero] = prob.shape[1]
        result: Array = prob / total[:, None]
        return result

    def arrays(self) -> dict[str, Array]:
        return {"coef": self.coef, "intercept": self.intercept}

    def scalars(self) -> dict[str, Any]:
        return {"link": self.link}

    @classmethod
    def restore(
        cls, arrays: dict[str, Array], scalars: dict[str, Any], classes: Array | None
    ) -> CompiledLinear:
        return cls(arrays["coef"], arrays["intercept"], classes, str(scalars["link"]))


@dataclass
class Affine:
    """``(x - sub) / div * mul + add``: a StandardScaler or a MinMaxScaler, step for step."""

    sub: Array
    div: Array
    mul: Array
    add: Array

    @classmethod
    def of(cls, step: Any) -> Affine | None:
        name = type(step).__name__
        n = int(getattr(step, "n_features_in_", 0) or 0)
        if not n:
            return None
        zeros, ones = np.zeros(n), np.ones(n)
        if name == "StandardScaler":
            mean = step.mean_ if step.with_mean and step.mean_ is not None else zeros
            scale = step.scale_ if step.with_std and step.scale_ is not None else ones
            return cls(np.asarray(mean, float), np.asarray(scale, float), ones, zeros)
        if name == "MinMaxScaler" and not step.clip:
            return cls(zeros, ones, np.asarray(step.scale_, float), np.asarray(step.min_, float))
        return None

    def transform(self, x: Array) -> Array:
        out = np.array(x, dtype=np.float64)
        out -= self.sub
        out /= self.div
        out *= self.mul
        out += self.add
        return out

    def arrays(self) -> dict[str, Array]:
        return {"sub": self.sub, "div": self.div, "mul": self.mul, "add": self.add}
