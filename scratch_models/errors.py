"""Errors of the scratch engine."""


class UnsupportedLayerError(NotImplementedError):
    """A Keras layer, op or option the engine does not reproduce exactly.

    The message names the layer, its class and the unsupported option, so a user knows what to change.
    """

    def __init__(self, layer_name: str, class_name: str, option: str):
        self.layer_name, self.class_name, self.option = layer_name, class_name, option
        super().__init__(f"Layer {layer_name!r} of class {class_name} is not supported by the scratch "
                         f"engine: {option}")


class IntegrityError(ValueError):
    """A saved artifact whose bytes do not match the checksum recorded beside them."""
