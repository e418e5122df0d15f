//! `image` nodes: a build (context, Dockerfile inside it, args, target) or an external
//! reference, never both.

use super::*;

pub(super) fn resolve_image(r: &mut Resolver, i: &raw::Image) -> Image {
    let depends_on = r.depends_on(&format!("image `{}`", &*i.name), &i.depends_on);
    let source = if let Some(reference) = &i.reference {
        if i.context.is_some() || i.dockerfile.is_some() || !i.args.is_empty() || i.target.is_some()
        {
            r.err(
                Diag::error(format!("image `{}` has both a reference and a build", &*i.name))
                    .label(at(reference.span()), "external reference")
                    .help("an image is either built (context, dockerfile) or used as is (reference), not both"),
            );
        }
        ImageSource::Reference(reference.to_string())
    } else {
        let context = r.path(i.context.as_deref().map(String::as_str).unwrap_or("."));
        let dockerfile = match &i.dockerfile {
            Some(d) => {
                let p = r.path(d);
                if !p.starts_with(&context) {
                    r.err(
                        Diag::error(format!(
                            "the Dockerfile of image `{}` is outside its build context",
                            &*i.name
                        ))
                        .label(at(d.span()), format!("not inside {}", context.display()))
                        .help("move the Dockerfile into the context directory, or widen `context`"),
                    );
                }
                p
            }
            None => context.join("Dockerfile"),
        };
        ImageSource::Build {
            context,
            dockerfile,
            args: merge_props(&i.args),
            target: i.target.clone(),
        }
    };
    Image {
        name: i.name.to_string(),
        span: span(&i.name),
        description: i.description.clone(),
        source,
        depends_on,
    }
}
