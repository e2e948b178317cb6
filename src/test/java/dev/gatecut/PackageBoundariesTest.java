package dev.gatecut;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.EvaluationResult;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Packages follow the pipeline and depend one way: no cycles between any two {@code dev.gatecut.*}
 * packages (each sub-package, such as {@code train.ort}, is its own slice), nothing depends on
 * the command line, and only the command line uses the library's front door ({@code api}).
 */
class PackageBoundariesTest {
    private static JavaClasses main;

    @BeforeAll
    static void importMainClasses() {
        main = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("dev.gatecut");
    }

    @Test
    void theImportSeesEveryPackage() {
        // A rule over an empty or partial import would pass vacuously.
        for (String p : new String[] {"onnx", "discover", "gates", "autodiff", "train", "train.ort", "train.data",
                "prune", "runtime", "runtime.bound", "passes", "report", "errors", "bench", "api", "cli"}) {
            assertTrue(main.containPackage("dev.gatecut." + p), p);
        }
    }

    @Test
    void noPackageCycles() {
        EvaluationResult r = slices().matching("dev.gatecut.(**)").should().beFreeOfCycles().evaluate(main);
        assertFalse(r.hasViolation(), () -> String.join("\n", r.getFailureReport().getDetails()));
    }

    @Test
    void nothingDependsOnTheCommandLine() {
        EvaluationResult r = noClasses().that().resideOutsideOfPackage("dev.gatecut.cli..")
                .should().dependOnClassesThat().resideInAPackage("dev.gatecut.cli..").evaluate(main);
        assertFalse(r.hasViolation(), () -> String.join("\n", r.getFailureReport().getDetails()));
    }

    @Test
    void onlyTheCommandLineUsesTheApi() {
        // The pipeline packages are what api wires; one of them reaching back into api would be a layer inversion.
        EvaluationResult r = noClasses().that().resideOutsideOfPackages("dev.gatecut.api..", "dev.gatecut.cli..")
                .should().dependOnClassesThat().resideInAPackage("dev.gatecut.api..").evaluate(main);
        assertFalse(r.hasViolation(), () -> String.join("\n", r.getFailureReport().getDetails()));
    }

    @Test
    void onlyTheBenchmarksBoundPathUsesBytedecosBinding() {
        // A second Java binding of ONNX Runtime stays behind runtime.bound (bench --io-binding, the device-resident
        // train step); the pipeline sees only its Java types.
        EvaluationResult r = noClasses().that().resideOutsideOfPackage("dev.gatecut.runtime.bound..")
                .should().dependOnClassesThat().resideInAPackage("org.bytedeco..").evaluate(main);
        assertFalse(r.hasViolation(), () -> String.join("\n", r.getFailureReport().getDetails()));
    }

    @Test
    void errorsDependOnNothingOfGatecut() {
        EvaluationResult r = noClasses().that().resideInAPackage("dev.gatecut.errors..")
                .should().dependOnClassesThat(JavaClass.Predicates.resideInAPackage("dev.gatecut..")
                        .and(JavaClass.Predicates.resideOutsideOfPackage("dev.gatecut.errors..")))
                .evaluate(main);
        assertFalse(r.hasViolation(), () -> String.join("\n", r.getFailureReport().getDetails()));
    }
}
