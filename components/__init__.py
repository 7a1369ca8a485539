"""Pure builders of the web app's figures and components: data in, Dash components or figures out."""
