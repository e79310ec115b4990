"""TF Serving's request and response protos (tensorflow-serving-api) against an exported SavedModel.

What a TensorFlow Serving client sends (a ``PredictRequest`` over gRPC, or a REST JSON
body) must name the ``serving_default`` inputs with their dtypes and ranks; what comes
back (a ``PredictResponse``) must carry the signature's outputs unchanged. No server
runs here: the request is serialized and parsed back, as a server receives it, and its
tensors are fed to the signature as the server would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_export, run_train
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2

TEXTS = ["the movie was great", "an awful boring film", "this plot is fun , not bad"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_bert, sentiment_data):
    """A tiny sentence classification run (one epoch), exported as a SavedModel."""
    folder = tmp_path_factory.mktemp("serving_api")
    settings = {"task.init_checkpoint": tiny_bert, "task.train_data.input_path": sentiment_data[0],
                "task.validation_data.input_path": sentiment_data[1], "task.max_seq_length": 32,
                "trainer.epochs": 1, "trainer.train_batch_size": 32, "trainer.learning_rate": 1e-3}
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={folder / 'model'}",
              "--params_override=" + ",".join(f"{key}={value}" for key, value in settings.items()))
    run_export(f"--model_dir={folder / 'model'}", f"--export_dir={folder / 'export'}")
    return folder / "export"


@pytest.fixture(scope="module")
def signatures(export_dir):
    return tf.saved_model.load(str(export_dir)).signatures


def request_problems(request: predict_pb2.PredictRequest, signatures) -> list[str]:
    """How ``request`` does not fit the SavedModel's signature (names, dtypes, ranks); [] if it does."""
    name = request.model_spec.signature_name or "serving_default"
    if name not in signatures:
        return [f"no signature '{name}'; the SavedModel has {sorted(signatures)}"]
    args, specs = signatures[name].structured_input_signature
    assert not args, "tfft signatures take keyword inputs only"
    problems = [f"missing input '{key}'" for key in sorted(set(specs) - set(request.inputs))]
    problems += [f"unknown input '{key}'" for key in sorted(set(request.inputs) - set(specs))]
    for key in sorted(set(specs) & set(request.inputs)):
        tensor, spec = request.inputs[key], specs[key]
        if tensor.dtype != spec.dtype.as_datatype_enum:
            dtype = tf.dtypes.as_dtype(tensor.dtype).name
            problems.append(f"input '{key}' is {dtype}, not {spec.dtype.name}")
        if len(tensor.tensor_shape.dim) != spec.shape.rank:
            problems.append(f"input '{key}' has rank {len(tensor.tensor_shape.dim)}, not {spec.shape.rank}")
    return problems


def text_request(inputs: dict, signature_name: str = "serving_default") -> predict_pb2.PredictRequest:
    """A PredictRequest as a client builds it, after the trip over the wire."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tfft"
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return predict_pb2.PredictRequest.FromString(request.SerializeToString())


def fed(request: predict_pb2.PredictRequest) -> dict:
    """The request's tensors as a server feeds them to the signature."""
    return {name: tf.constant(tf.make_ndarray(tensor)) for name, tensor in request.inputs.items()}


def test_predict_service_takes_predict_request():
    service = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
    method = service.methods_by_name["Predict"]
    assert method.input_type.full_name == "tensorflow.serving.PredictRequest"
    assert method.output_type.full_name == "tensorflow.serving.PredictResponse"


def test_predict_request_and_response_round_trip_the_signature(signatures):
    request = text_request({"text": tf.constant(TEXTS)})
    assert request.model_spec.name == "tfft" and request.model_spec.signature_name == "serving_default"
    assert request_problems(request, signatures) == []

    signature = signatures[request.model_spec.signature_name]
    outputs = signature(**fed(request))
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    received = predict_pb2.PredictResponse.FromString(response.SerializeToString())

    assert sorted(received.outputs) == sorted(signature.structured_outputs)
    assert sorted(received.outputs) == ["label", "logits", "probabilities"]
    for name, spec in signature.structured_outputs.items():
        assert received.outputs[name].dtype == spec.dtype.as_datatype_enum, name
    direct = signature(text=tf.constant(TEXTS))
    labels = tf.make_ndarray(received.outputs["label"])
    probabilities = tf.make_ndarray(received.outputs["probabilities"])
    np.testing.assert_array_equal(labels, direct["label"].numpy())
    np.testing.assert_array_equal(probabilities, direct["probabilities"].numpy())
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(TEXTS), 2)
    # The labels are the names (labels.txt) of the most probable classes.
    assert [label.decode() for label in labels] == [str(i) for i in np.argmax(probabilities, axis=-1)]


@pytest.mark.parametrize("inputs, signature_name, problem", [
    ({"sentence": TEXTS}, "serving_default", ["missing input 'text'", "unknown input 'sentence'"]),
    ({"text": np.array([1, 2], np.int32)}, "serving_default", ["input 'text' is int32, not string"]),
    ({"text": [TEXTS]}, "serving_default", ["input 'text' has rank 2, not 1"]),
    ({"text": TEXTS}, "predict", ["no signature 'predict'; the SavedModel has "]),
])
def test_request_that_does_not_fit_the_signature_is_detected(signatures, inputs, signature_name, problem):
    problems = request_problems(text_request(inputs, signature_name), signatures)
    assert len(problems) == len(problem)
    assert all(found.startswith(want) for found, want in zip(problems, problem, strict=True)), problems
    if signature_name in signatures:  # What the server would hit feeding it anyway.
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            signatures[signature_name](**fed(text_request(inputs, signature_name)))


def rest_problems(body: dict, signatures) -> list[str]:
    """How a REST ``:predict`` body in the row format does not fit the signature; [] if it does."""
    name = body.get("signature_name", "serving_default")
    if name not in signatures:
        return [f"no signature '{name}'"]
    inputs = set(signatures[name].structured_input_signature[1])
    return [f"instance {index}: {what} input '{key}'"
            for index, instance in enumerate(body["instances"])
            for what, keys in (("missing", inputs - set(instance)), ("unknown", set(instance) - inputs))
            for key in sorted(keys)]


def test_rest_body_instances_name_the_signature_inputs(signatures):
    """The REST API's row format: one object per example, keyed by the signature's input names."""
    body = json.loads(json.dumps({"signature_name": "serving_default",
                                  "instances": [{"text": text} for text in TEXTS]}))
    assert rest_problems(body, signatures) == []
    signature = signatures[body["signature_name"]]
    inputs = signature.structured_input_signature[1]
    columns = {name: tf.constant([instance[name] for instance in body["instances"]], inputs[name].dtype)
               for name in inputs}
    served = signature(**columns)
    direct = signature(text=tf.constant(TEXTS))
    np.testing.assert_array_equal(served["label"].numpy(), direct["label"].numpy())

    wrong = {"signature_name": "serving_default", "instances": [{"sentence": TEXTS[0]}, {"text": TEXTS[1]}]}
    assert rest_problems(wrong, signatures) == ["instance 0: missing input 'text'",
                                                "instance 0: unknown input 'sentence'"]
    assert rest_problems({**body, "signature_name": "serve"}, signatures) == ["no signature 'serve'"]
