"""Go's learning_rate_multipliers (graph/optimizer.go) for a Keras optimizer
class: the parity test (keras_parity.py) and keras_recipe.py train with it."""
import fnmatch


def with_lr_multipliers(cls, mults):
    """cls whose update_step scales the rate of each weight named layer/param
    that matches a pattern. Keras has no such argument; the decoupled weight
    decay, which Keras applies before update_step with the optimizer's own
    rate, keeps that rate, as Go's."""

    class Multiplied(cls):
        def update_step(self, gradient, variable, learning_rate):
            # The TF backend passes the tf.Variable; its Keras variable has the path.
            keras_var = self._trainable_variables[self._get_variable_index(variable)]
            name = "/".join(keras_var.path.split("/")[-2:])
            for pat, k in mults.items():
                if fnmatch.fnmatchcase(name, pat):
                    learning_rate = learning_rate * k
                    break
            return super().update_step(gradient, variable, learning_rate)

    Multiplied.__name__ = cls.__name__
    return Multiplied
