"""The Config of each of nnlab's own experiments, in modules that import no torch:
``nnlab run NAME --help`` builds its flags from them without loading the experiment."""
